#!/usr/bin/env bash
# Where `baseline restore --apply` spends its time, against `chown -R` doing the same number
# of changes (docs/benchmarks.md, "Where the restore's time goes").
#
#   benches/restore-profile.sh [--quick] [--rt] [--no-build] [BEFORE]
#
# Per tree (media and mixed, as benches/baseline.sh makes them; SIZE, default "100 10 100"):
# the system calls of chown -R and of restore --apply (strace -c -f: counts), then ROUNDS
# (default 5) rounds of: chown -R over every entry, restore --apply with the journal on disk,
# again with the journal on tmpfs (/dev/shm), and the restore's plan alone (the walk, the merge
# and the plan; nothing changed), wall and CPU seconds, medians. BEFORE: another homelab-verify
# binary (an older build) timed the same way in the same rounds. Then the CPU time of each
# system call per change (benches/restore-syscalls.c, built with cc).
#   --quick      small trees (20 x 5 x 20), one round, 2,000 files per call: a smoke run of
#                this script (scripts/test-all runs it)
#   --rt         every timed command under SCHED_FIFO (`chrt -f 10`), for a shared machine
#   --no-build   use target/release as it is
#   BENCH_DIR    where the work directory is made (default /var/tmp); the script makes a fresh
#                directory there (mktemp) and chowns only the trees it makes below it
# Needs root, strace and cc.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v cargo >/dev/null 2>&1 || . "$HOME/.cargo/env"

quick=0 rt=() build=1 before=
for a in "$@"; do
  case "$a" in
    --quick) quick=1 ;;
    --rt) rt=(chrt -f 10) ;;
    --no-build) build=0 ;;
    -*) echo "usage: benches/restore-profile.sh [--quick] [--rt] [--no-build] [BEFORE]" >&2; exit 2 ;;
    *) before=$(realpath -- "$a") ;;
  esac
done
[[ $(id -u) -eq 0 ]] || { echo "benches/restore-profile.sh: must run as root (it chowns its trees)" >&2; exit 2; }
for t in strace cc /usr/bin/time; do
  command -v "$t" >/dev/null || { echo "benches/restore-profile.sh: $t is missing: run scripts/setup-debian --test" >&2; exit 2; }
done
[[ -z $before || -x $before ]] || { echo "benches/restore-profile.sh: $before is not a program" >&2; exit 2; }
ROUNDS=${ROUNDS:-5}
SIZE=${SIZE:-100 10 100}
files=20000
if (( quick )); then ROUNDS=1 SIZE="20 5 20" files=2000; fi

parent=${BENCH_DIR:-/var/tmp}
W=$(mktemp -d "$parent/homelab-restore-profile.XXXXXX")
# Everything below chowns only inside $W, which must be the fresh directory mktemp made.
case "$W" in "$parent"/homelab-restore-profile.??????) ;; *) echo "unexpected work directory '$W'" >&2; exit 1 ;; esac
[[ -d $W && ! -L $W && -z $(ls -A "$W") ]] || { echo "work directory $W is not a fresh directory" >&2; exit 1; }
S=$(mktemp -d /dev/shm/homelab-restore-profile.XXXXXX)
case "$S" in /dev/shm/homelab-restore-profile.??????) ;; *) echo "unexpected tmpfs directory '$S'" >&2; exit 1 ;; esac
trap 'rm -rf -- "$W" "$S"' EXIT

if (( build )); then cargo build --release --quiet -p homelab-verify -p treegen; fi
hv=$PWD/target/release/homelab-verify
treegen=$PWD/target/release/treegen

echo "== restore profile: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
echo "   nproc: $(nproc); $(uptime | sed 's/^ *//'); kernel $(uname -r); open files: $(ulimit -Sn) (hard $(ulimit -Hn))"
echo "   scheduling: ${rt[*]:-normal (shared with whatever else runs)}; before: ${before:-none}"
echo "   filesystem of $W: $(findmnt -no FSTYPE,SOURCE -T "$W" | tr -s ' ')"

# timed CMD...: "wall cpu" seconds of one run.
timed() {
  "${rt[@]}" /usr/bin/time -f "%e %U %S" -o "$W/time" "$@" >/dev/null 2>&1 || true
  tail -1 "$W/time" | awk '{printf "%.3f %.3f\n", $1, $2 + $3}'
}
median() { awk 'NF' | sort -g -k"$1" | awk -v c="$1" '{a[NR]=$c} END{printf "%.3f", a[int((NR+1)/2)]}'; }

profile() {
  local name=$1; shift
  local dir=$W/$name
  local made; made=$(env "$@" "$treegen" media "$dir" $SIZE)
  [[ -n $dir && $dir == "$W"/?* && -d $dir && ! -L $dir ]] || { echo "tree $dir is not below $W" >&2; exit 1; }
  local base=$W/$name.baseline
  "$hv" baseline take "$dir" -o "$base" --no-progress >/dev/null
  breakit() { [[ $dir == "$W"/?* ]] || exit 1; chown -R 4321:4321 -- "$dir"; }
  verify() { "$hv" baseline check "$base" --no-progress >/dev/null || { echo "   the restore left differences" >&2; exit 1; }; }
  echo
  echo "-- $name: ${made%% *} ($* treegen media $SIZE)"

  local bins=(after) ; [[ -n $before ]] && bins=(before after)
  local -A prog=([after]=$hv [before]=$before)
  breakit
  strace -c -f -o "$W/st.chown" chown -R 4321:4321 -- "$dir"
  for b in "${bins[@]}"; do
    rm -f -- "$W/j"
    strace -c -f -o "$W/st.$b" "${prog[$b]}" baseline restore "$base" --apply --journal "$W/j" --no-progress >/dev/null || true
    verify
    breakit
  done
  echo "   system calls (strace -c -f; 1,000 calls or more):"
  for f in chown "${bins[@]}"; do
    printf '     %-8s' "$f"
    awk 'NR > 2 && !/^-/ && NF >= 5 && $4 + 0 >= 1000 {printf " %s %d,", $NF, $4}' "$W/st.$f" | sed 's/,$//'
    echo
  done
  echo "   journal: $(($(wc -l < "$W/j") - 1)) records, $(stat -c %s "$W/j") bytes"

  local -A res
  for ((i = 0; i < ROUNDS; i++)); do
    for b in "${bins[@]}"; do
      breakit
      res[plan_$b]+="$(timed "${prog[$b]}" baseline restore "$base" --no-progress)"$'\n'
      res[chown]+="$(timed chown -R 4321:4321 -- "$dir")"$'\n'
      rm -f -- "$W/j"
      res[$b]+="$(timed "${prog[$b]}" baseline restore "$base" --apply --journal "$W/j" --no-progress)"$'\n'
      verify
      breakit
      rm -f -- "$S/j"
      res[${b}_tmpfs]+="$(timed "${prog[$b]}" baseline restore "$base" --apply --journal "$S/j" --no-progress)"$'\n'
      verify
    done
  done
  local cw; cw=$(printf '%s' "${res[chown]}" | median 1)
  printf '   %-40s %8s %8s %9s\n' "median of $ROUNDS" "wall s" "CPU s" "wall/chown"
  for k in chown "${bins[@]/%/}" "${bins[@]/%/_tmpfs}" "${bins[@]/#/plan_}"; do
    local w c; w=$(printf '%s' "${res[$k]}" | median 1); c=$(printf '%s' "${res[$k]}" | median 2)
    local label
    case "$k" in
      chown) label="chown -R (every entry)" ;;
      *_tmpfs) label="restore --apply ${k%_tmpfs}, journal on tmpfs" ;;
      plan_*) label="restore ${k#plan_}, plan only" ;;
      *) label="restore --apply $k" ;;
    esac
    printf '   %-40s %8s %8s %8.2fx\n' "$label" "$w" "$c" "$(awk -v a="$w" -v b="$cw" 'BEGIN{print (b > 0 ? a / b : 0)}')"
  done
  rm -rf -- "$W/j" "$S/j"
}

profile media TREEGEN_DRIFT_PPM=1500
profile mixed TREEGEN_PER_DIR_OWNERS=1 TREEGEN_DRIFT_PPM=50000

echo
echo "-- system calls per change (benches/restore-syscalls.c)"
cc -O2 -Wall -o "$W/restore-syscalls" benches/restore-syscalls.c
"${rt[@]}" "$W/restore-syscalls" "$W" "$files"
echo
echo "benches/restore-profile.sh: done"
