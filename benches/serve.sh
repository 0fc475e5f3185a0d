#!/usr/bin/env bash
# `homelab-verify serve` under load: wrk against cached /healthz on 127.0.0.1, bounded in time.
#   benches/serve.sh           rounds of `wrk -t2 -c200 -d30s --latency` until 1,000,000 requests
#                              (at most 8 rounds): latency percentiles, errors, requests/s, and the
#                              server's RSS (VmRSS) before, after each round and at the end
#   benches/serve.sh --long    6 rounds whatever the count (about 3 minutes): whether RSS grows
#   benches/serve.sh --quick   one 5 s round at 50 connections: a smoke run (scripts/test-all)
# Results: docs/benchmarks.md#serve. Needs wrk (scripts/setup-debian --test). The server checks a
# fixture sysroot (the healthy `mounts-ok` host), so the figures do not depend on this machine's
# disks; its own --cache is the default 30 s, so a round includes probe re-runs.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v cargo >/dev/null 2>&1 || . "$HOME/.cargo/env"

quick=0 long=0
case "${1:-}" in
  --quick) quick=1 ;;
  --long) long=1 ;;
  "") ;;
  *) echo "usage: benches/serve.sh [--quick|--long]" >&2; exit 2 ;;
esac
command -v wrk >/dev/null || { echo "serve.sh: wrk is missing (scripts/setup-debian --test)" >&2; exit 1; }

cargo build --release --quiet --locked -p homelab-verify
bin=$PWD/target/release/homelab-verify
fixtures=$PWD/crates/homelab-probe/tests/fixtures

log=$(mktemp)
# The fixture sysroots are built from their layers (tests/fixtures/README.md): `cargo fixture`
# prints where.
root=$(cargo fixture mounts-ok)
"$bin" serve --listen 127.0.0.1:0 --root "$root" --expect "$fixtures/expect/plex-mounts.toml" 2>"$log" &
pid=$!
# The server is stopped however this script ends; by its pid, never by name.
trap 'kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; rm -f "$log"' EXIT

port=""
for _ in $(seq 100); do
  port=$(sed -n 's|^homelab-verify serve: listening on http://127.0.0.1:\([0-9]*\)$|\1|p' "$log")
  [[ -n "$port" ]] && break
  sleep 0.1
done
[[ -n "$port" ]] || { echo "serve.sh: the server did not start:" >&2; cat "$log" >&2; exit 1; }
url="http://127.0.0.1:$port/healthz"

rss() { awk '/^VmRSS:/ { printf "%.1f", $2 / 1024 }' "/proc/$pid/status"; }
# The server's CPU time (user + system) in clock ticks, proc_pid_stat(5) fields 14 and 15 (the
# command name, field 2, has no blanks here).
ticks() { awk '{ print $14 + $15 }' "/proc/$pid/stat"; }
hz=$(getconf CLK_TCK)
hwm() { awk '/^VmHWM:/ { printf "%.1f", $2 / 1024 }' "/proc/$pid/status"; }

status=$(curl -s -o /dev/null -w '%{http_code}' "$url" 2>/dev/null || true)
[[ "$status" == 200 ]] || { echo "serve.sh: $url answered $status, not 200" >&2; exit 1; }
# Warm up: connections, the caches, the allocator.
wrk -t2 -c200 -d2s "$url" >/dev/null

echo "== serve benchmark: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
echo "   nproc: $(nproc); $(uptime)"
echo "   $(wrk -v 2>&1 | head -1); kernel $(uname -r)"
echo "   server: $bin serve (pid $pid) on $url"
echo "   RSS before: $(rss) MiB"

if (( quick )); then
  rounds=1 args=(-t2 -c50 -d5s) target=0
elif (( long )); then
  rounds=6 args=(-t2 -c200 -d30s) target=1000000000
else
  rounds=8 args=(-t2 -c200 -d30s) target=1000000
fi

total=0 errors=0
printf '   %-6s %10s %10s %8s %8s %8s %8s %8s %8s %10s\n' round requests "req/s" "p50 ms" "p90 ms" "p99 ms" "max ms" errors "RSS MiB" "CPU us/req"
for round in $(seq "$rounds"); do
  before=$(ticks)
  out=$(wrk "${args[@]}" --latency "$url")
  after=$(ticks)
  # wrk's --latency lines: "     50%  1.23ms"; the unit is us, ms or s.
  pct() {
    awk -v p="$1%" '$1 == p {
      v = $2; u = v; sub(/[0-9.]+/, "", u); sub(/[a-z]+$/, "", v)
      if (u == "us") v /= 1000; else if (u == "s") v *= 1000; else if (u == "m") v *= 60000
      printf "%.2f", v }' <<<"$out"
  }
  max=$(awk '$1 == "Latency" && $2 != "Distribution" { v = $4; u = v; sub(/[0-9.]+/, "", u); sub(/[a-z]+$/, "", v)
    if (u == "us") v /= 1000; else if (u == "s") v *= 1000; printf "%.2f", v }' <<<"$out")
  requests=$(awk '/requests in/ { print $1 }' <<<"$out")
  rps=$(awk '/^Requests\/sec:/ { printf "%.0f", $2 }' <<<"$out")
  # Socket errors (connect, read, write, timeout) and answers other than 2xx/3xx.
  errs=$(awk '/Socket errors:/ { gsub(/,/, ""); n += $4 + $6 + $8 + $10 } /Non-2xx or 3xx/ { n += $NF } END { print n + 0 }' <<<"$out")
  total=$((total + requests)) errors=$((errors + errs))
  # The server's own CPU time per request: what the machine's load does not change much.
  cpu=$(awk -v t=$((after - before)) -v hz="$hz" -v n="$requests" 'BEGIN { printf "%.1f", t / hz * 1e6 / n }')
  printf '   %-6s %10s %10s %8s %8s %8s %8s %8s %8s %10s\n' "$round" "$requests" "$rps" "$(pct 50)" "$(pct 90)" "$(pct 99)" "$max" "$errs" "$(rss)" "$cpu"
  (( total >= target )) && break
done
echo "   total: $total requests, $errors errors; RSS after: $(rss) MiB, peak (VmHWM): $(hwm) MiB"
# One connection, one request at a time: the time to answer one request, without the queue that
# 200 closed-loop connections make (their latency is about 200 / requests per second).
one=$(wrk -t1 -c1 -d5s --latency "$url")
echo "   one connection: $(awk '/^Requests\/sec:/ { printf "%.0f req/s", $2 }' <<<"$one"), p50 $(awk '$1 == "50%" { print $2 }' <<<"$one"), p99 $(awk '$1 == "99%" { print $2 }' <<<"$one")"
echo "   after: $(uptime)"
if (( ! quick && ! long )) && (( total < target )); then
  echo "serve.sh: only $total requests in $rounds rounds (target $target)" >&2
  exit 1
fi
(( errors == 0 )) || { echo "serve.sh: $errors errors" >&2; exit 1; }
