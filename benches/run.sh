#!/usr/bin/env bash
# The drift scanner against GNU find, bfs and fd on the same trees, in one run.
#
#   benches/run.sh                 media (1000 x 10 x 100 = 1,011,001 entries, 0.15 % drift),
#                                  flat (200,000 entries in one directory), deep (2000 levels),
#                                  edge (odd names, links, special files): warm and cold cache
#   benches/run.sh --quick         a small media tree (20 x 5 x 20) and edge, 1 run each: a smoke
#                                  test of this script (scripts/test-all runs it)
#   benches/run.sh --rt            run every tool (ours and the peers alike) under SCHED_FIFO
#                                  (`chrt -f 10`), so that other work on a shared machine (other
#                                  builds, VMs) does not distort the timings; combine freely
#   benches/run.sh --ten-million   only the 10M tree: 10,101,001 entries (1000 x 100 x 100) on a
#                                  loop-mounted ext4 image with its own inodes (so the host
#                                  filesystem's inodes are not used up): wall and peak RSS at scale
#   BENCH_DIR=/path                where trees are made and kept (default /var/tmp/homelab-bench)
#   RUNS=N                         warm runs per tool (default 5; the median is shown)
#   COLD_RUNS=N                    cold runs per tool (default 3; the median is shown)
#
# For every tree it first checks that all four tools report the same set of paths (sorted,
# NUL-separated; fd prints directories with a trailing /, which is stripped), then times
# each: wall seconds (median of RUNS warm runs; cold: median of COLD_RUNS runs, each after
# `sync; echo 3 > /proc/sys/vm/drop_caches`),
# files per second (entries in the tree / wall), peak RSS (max over runs, GNU time's %M), and
# the ratio peer time / our time (above 1: we are faster).
#
# fd cannot say "uid != U or gid != G" in one run (`--owner` tests uid AND gid), so fd runs
# twice (`--owner '!U'`, then `--owner ':!G'`) and its time is the sum; it never prints the
# root itself (the trees' roots are not drifted). Needs root (treegen chowns; drop_caches).
set -euo pipefail
cd "$(dirname "$0")/.."
command -v cargo >/dev/null 2>&1 || . "$HOME/.cargo/env"

quick=0 ten=0 rt=()
for a in "$@"; do
  case "$a" in
    --quick) quick=1 ;;
    --ten-million) ten=1 ;;
    --rt) rt=(chrt -f 10) ;;
    *) echo "usage: benches/run.sh [--quick] [--rt] [--ten-million]" >&2; exit 2 ;;
  esac
done
[[ $(id -u) -eq 0 ]] || { echo "benches/run.sh: must run as root (treegen chowns, cold runs drop caches)" >&2; exit 2; }
for t in find bfs fdfind /usr/bin/time; do
  command -v "$t" >/dev/null || { echo "benches/run.sh: $t is missing: run scripts/setup-debian --test" >&2; exit 2; }
done

BENCH_DIR=${BENCH_DIR:-/var/tmp/homelab-bench}
RUNS=${RUNS:-5}
COLD_RUNS=${COLD_RUNS:-3}
U=1000 G=110
(( quick )) && RUNS=1
mkdir -p "$BENCH_DIR"
BENCH_DIR=$(realpath "$BENCH_DIR")

cargo build --release --quiet -p homelab-verify -p treegen
ours_bin=$PWD/target/release/homelab-verify
treegen=$PWD/target/release/treegen

echo "== drift benchmark: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
echo "   nproc: $(nproc); $(uptime | sed 's/^ *//')"
echo "   $(find --version | head -1); bfs $(bfs --version | head -1 | awk '{print $2}'); $(fdfind --version); kernel $(uname -r)"
echo "   scheduling: ${rt[*]:-normal (shared with whatever else runs)}"
echo "   filesystem of $BENCH_DIR: $(findmnt -no FSTYPE,SOURCE -T "$BENCH_DIR" | tr -s ' ')"

# make NAME KIND ARGS...: generate once; the marker keeps the arguments used.
make_tree() {
  local name=$1; shift
  local dir=$BENCH_DIR/$name marker=$BENCH_DIR/$name.made
  if [[ ! -f $marker || $(head -1 "$marker") != "$*" ]]; then
    rm -rf "$dir" "$marker"
    echo "   generating $name ($*) ..." >&2
    local out; out=$("$treegen" "$1" "$dir" "${@:2}")
    printf '%s\n%s\n' "$*" "$out" > "$marker"
  fi
  echo "$dir"
}

entries_of() { sed -n 2p "$BENCH_DIR/$1.made" | sed 's/.*entries=\([0-9]*\).*/\1/'; }

run_ours()  { "$ours_bin" drift "$1" --uid $U --gid $G --format paths0 --no-progress; }
run_find()  { find "$1" -xdev \( ! -uid $U -o ! -gid $G \) -print0; }
run_bfs()   { bfs "$1" -xdev \( ! -uid $U -o ! -gid $G \) -print0; }
run_fd()    { fdfind -u -0 --one-file-system --owner "!$U" . "$1"; fdfind -u -0 --one-file-system --owner ":!$G" . "$1"; }

# sorted, deduplicated (fd's two runs overlap), trailing / removed
normalize() { sed -z 's#/$##' | sort -zu; }

check_agree() {
  local dir=$1 tmp; tmp=$(mktemp -d)
  for t in ours find bfs fd; do
    { "run_$t" "$dir" 2>/dev/null || true; } | normalize > "$tmp/$t"
  done
  local n; n=$(tr -cd '\0' < "$tmp/ours" | wc -c)
  for t in find bfs fd; do
    if ! cmp -s "$tmp/ours" "$tmp/$t"; then
      echo "   MISMATCH: ours and $t differ on $dir (outputs kept in $tmp)" >&2
      exit 1
    fi
  done
  rm -rf "$tmp"
  echo "   outputs agree: $n offending paths from ours, find, bfs and fd"
}

# time_one TOOL DIR -> "seconds maxrss_kb" (wall from bash's microsecond clock; RSS from GNU time)
time_one() {
  local tool=$1 dir=$2 f t0 t1; f=$(mktemp)
  t0=$EPOCHREALTIME
  if [[ $tool == fd ]]; then
    "${rt[@]}" /usr/bin/time -f "%e %M" -o "$f" fdfind -u -0 --one-file-system --owner "!$U" . "$dir" >/dev/null 2>&1 || true
    local a; a=$(tail -1 "$f")
    "${rt[@]}" /usr/bin/time -f "%e %M" -o "$f" fdfind -u -0 --one-file-system --owner ":!$G" . "$dir" >/dev/null 2>&1 || true
    t1=$EPOCHREALTIME
    local b; b=$(tail -1 "$f")
    awk -v a="$a" -v b="$b" -v t0="$t0" -v t1="$t1" 'BEGIN{split(a,x," ");split(b,y," ");printf "%.4f %d\n", t1-t0, (x[2]>y[2]?x[2]:y[2])}'
  else
    case $tool in
      ours) "${rt[@]}" /usr/bin/time -f "%e %M" -o "$f" "$ours_bin" drift "$dir" --uid $U --gid $G --format paths0 --no-progress ;;
      find) "${rt[@]}" /usr/bin/time -f "%e %M" -o "$f" find "$dir" -xdev \( ! -uid $U -o ! -gid $G \) -print0 ;;
      bfs) "${rt[@]}" /usr/bin/time -f "%e %M" -o "$f" bfs "$dir" -xdev \( ! -uid $U -o ! -gid $G \) -print0 ;;
    esac >/dev/null 2>&1 || true
    t1=$EPOCHREALTIME
    awk -v t0="$t0" -v t1="$t1" -v l="$(tail -1 "$f")" 'BEGIN{split(l,x," "); printf "%.4f %d\n", t1-t0, x[2]}'
  fi
  rm -f "$f"
}

drop_caches() { sync; echo 3 > /proc/sys/vm/drop_caches; }

bench_tree() {
  local name=$1 dir=$2 entries; entries=$(entries_of "$name")
  echo
  echo "-- $name: $dir, $entries entries"
  check_agree "$dir"
  local -A wall rss cold
  for t in ours find bfs fd; do
    time_one "$t" "$dir" >/dev/null   # warm the cache
    local times=() maxr=0
    for ((i = 0; i < RUNS; i++)); do
      read -r s r < <(time_one "$t" "$dir")
      times+=("$s"); (( r > maxr )) && maxr=$r
    done
    wall[$t]=$(printf '%s\n' "${times[@]}" | sort -g | awk '{a[NR]=$1} END{print a[int((NR+1)/2)]}')
    rss[$t]=$maxr
  done
  if (( ! quick )); then
    # Cold runs interleaved (ours, find, bfs, fd, ours, ...) so that a burst of other disk
    # traffic hits every tool alike; the median of COLD_RUNS is shown.
    local -A colds
    for ((i = 0; i < COLD_RUNS; i++)); do
      for t in ours find bfs fd; do
        drop_caches
        read -r s r < <(time_one "$t" "$dir")
        colds[$t]+="$s "
      done
    done
    for t in ours find bfs fd; do
      cold[$t]=$(printf '%s\n' ${colds[$t]} | sort -g | awk '{a[NR]=$1} END{print a[int((NR+1)/2)]}')
    done
  fi
  printf '   %-5s %10s %12s %10s %9s' tool "warm s" "files/s" "RSS MiB" "ratio"
  (( quick )) || printf ' %10s %12s %9s' "cold s" "files/s" "ratio"
  echo
  for t in ours find bfs fd; do
    printf '   %-5s %10.3f %12.0f %10.1f %9s' "$t" "${wall[$t]}" "$(awk -v e="$entries" -v s="${wall[$t]}" 'BEGIN{print (s>0?e/s:0)}')" \
      "$(awk -v k="${rss[$t]}" 'BEGIN{print k/1024}')" \
      "$(awk -v p="${wall[$t]}" -v o="${wall[ours]}" 'BEGIN{printf "%.2fx", (o>0?p/o:0)}')"
    if (( ! quick )); then
      printf ' %10.3f %12.0f %9s' "${cold[$t]}" "$(awk -v e="$entries" -v s="${cold[$t]}" 'BEGIN{print (s>0?e/s:0)}')" \
        "$(awk -v p="${cold[$t]}" -v o="${cold[ours]}" 'BEGIN{printf "%.2fx", (o>0?p/o:0)}')"
    fi
    echo
  done
}

if (( quick )); then
  bench_tree media-quick "$(make_tree media-quick media 20 5 20)"
  bench_tree edge "$(make_tree edge edge 5000)"
  echo; echo "benches/run.sh --quick: done"
  exit 0
fi

if (( ! ten )); then
  bench_tree media "$(make_tree media media 1000 10 100)"
  bench_tree flat "$(make_tree flat flat 1 200000)"
  bench_tree deep "$(make_tree deep deep 2000 2)"
  bench_tree edge "$(make_tree edge edge 5000)"
  exit 0
fi

img=$BENCH_DIR/ten-million.ext4 mnt=$BENCH_DIR/ten-million
mkdir -p "$mnt"
if ! mountpoint -q "$mnt"; then
  if [[ ! -f $img ]]; then
    echo "   making a 24 GiB sparse ext4 image with 11M inodes for 10M files ..." >&2
    truncate -s 24G "$img"
    mkfs.ext4 -q -N 11000000 "$img"
  fi
  mount -o loop "$img" "$mnt"
fi
BENCH_DIR=$mnt
dir=$(make_tree media10m media 1000 100 100)
entries=$(entries_of media10m)
echo
echo "-- media10m: $dir, $entries entries (on $(findmnt -no SOURCE -T "$dir"))"
# The first run reads what generation left in the cache; the second is warm as far as 24 GiB
# of memory allows. Offending paths are compared with find's first.
tmp=$(mktemp -d)
{ run_ours "$dir" || true; } | normalize > "$tmp/ours"
{ run_find "$dir" 2>/dev/null || true; } | normalize > "$tmp/find"
cmp -s "$tmp/ours" "$tmp/find" || { echo "   MISMATCH between ours and find (kept in $tmp)" >&2; exit 1; }
echo "   outputs agree: $(tr -cd '\0' < "$tmp/ours" | wc -c) offending paths from ours and find"
rm -rf "$tmp"
for t in ours find bfs ours; do
  read -r s r < <(time_one "$t" "$dir")
  printf '   %-5s %8.3f s  %12.0f files/s  peak RSS %6.1f MiB\n' "$t" "$s" \
    "$(awk -v e="$entries" -v s="$s" 'BEGIN{print e/s}')" "$(awk -v k="$r" 'BEGIN{print k/1024}')"
done
echo "   (the image stays mounted at $mnt: umount it and delete $img when done)"
