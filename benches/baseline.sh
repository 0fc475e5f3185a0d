#!/usr/bin/env bash
# Ownership baselines against mtree and getfacl on the same trees, in one run.
#
#   benches/baseline.sh              media (1000 x 10 x 100 = 1,011,001 entries, one owner, 0.15 %
#                                    exceptions) and mixed (the same shape, every directory's
#                                    entries with their own owner, 5 % exceptions): warm and cold
#   benches/baseline.sh --quick      a small media and mixed tree (20 x 5 x 20), 1 run each, no
#                                    cold runs and no getfacl restore: a smoke test of this script
#                                    (scripts/test-all runs it)
#   benches/baseline.sh --rt         every tool under SCHED_FIFO (`chrt -f 10`), as benches/run.sh
#   benches/baseline.sh --no-build   use target/release as it is (another cargo holds the build lock)
#   benches/baseline.sh --ten-million  only peak RSS and wall at scale: a mixed tree of 10,101,001
#                                    entries (1000 x 100 x 100) on a loop-mounted ext4 image made in
#                                    the work directory (its own 11M inodes): the drift scan, take,
#                                    check of the tree as taken, check after `chown -R` of all of it
#                                    (10M differences), restore --apply, check; about 12 minutes and
#                                    6 GB of disk (2.5 GB of it the journal), unmounted and deleted at the end
#   BENCH_DIR=/path                  where the work directory is made (default /var/tmp); the
#                                    script makes a fresh directory there (mktemp) and works only
#                                    below it: the trees it makes are the only ones it chowns
#   RUNS=N COLD_RUNS=N               warm runs (median shown, default 5) and cold runs (default 3)
#   SIZE="SHOWS SEASONS EPISODES"    another tree size (default "1000 10 100")
#
# Peers, checked equal first: K entries (every 997th file) are given another owner and one
# another mode; `homelab-verify baseline check` and `mtree -f SPEC` must name the same paths
# (the lines by which `getfacl -R` listings before and after differ, owner comments left out,
# are printed for information); then `baseline restore --apply` puts them back and `check`
# finds nothing.
#
# Timed, per tree: the plain drift scan (the floor the take and check are measured against),
# `baseline take`, `baseline check`, `mtree -c -k uid,gid,mode,type`, `mtree -f`, `getfacl -R -p`;
# then the `chown -R` disaster (every entry to 4321:4321) timed as the peer of
# `baseline restore --apply` doing the same number of changes, each restore verified. Sizes: the
# baseline file, mtree's spec and getfacl's text, raw and `zstd -19`. Peak RSS from GNU time.
# Needs root (treegen chowns; cold runs drop caches).
set -euo pipefail
cd "$(dirname "$0")/.."
command -v cargo >/dev/null 2>&1 || . "$HOME/.cargo/env"

quick=0 rt=() build=1 ten=0
for a in "$@"; do
  case "$a" in
    --quick) quick=1 ;;
    --ten-million) ten=1 ;;
    --rt) rt=(chrt -f 10) ;;
    --no-build) build=0 ;;
    *) echo "usage: benches/baseline.sh [--quick] [--rt] [--no-build] [--ten-million]" >&2; exit 2 ;;
  esac
done
[[ $(id -u) -eq 0 ]] || { echo "benches/baseline.sh: must run as root (treegen chowns, cold runs drop caches)" >&2; exit 2; }
for t in mtree getfacl zstd find /usr/bin/time; do
  command -v "$t" >/dev/null || { echo "benches/baseline.sh: $t is missing: run scripts/setup-debian --test" >&2; exit 2; }
done

RUNS=${RUNS:-5}
COLD_RUNS=${COLD_RUNS:-3}
(( quick )) && RUNS=1
parent=${BENCH_DIR:-/var/tmp}
W=$(mktemp -d "$parent/homelab-baseline-bench.XXXXXX")
# Everything below chowns only inside $W, which must be the fresh directory mktemp made.
case "$W" in "$parent"/homelab-baseline-bench.??????) ;; *) echo "unexpected work directory '$W'" >&2; exit 1 ;; esac
[[ -d $W && ! -L $W && -z $(ls -A "$W") ]] || { echo "work directory $W is not a fresh directory" >&2; exit 1; }
trap 'rm -rf -- "$W"' EXIT

if (( build )); then cargo build --release --quiet -p homelab-verify -p treegen; fi
hv=$PWD/target/release/homelab-verify
treegen=$PWD/target/release/treegen

echo "== baseline benchmark: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
echo "   nproc: $(nproc); $(uptime | sed 's/^ *//')"
echo "   mtree: $(dpkg-query -W -f '${Package} ${Version}' mtree-netbsd 2>/dev/null || echo mtree); $(getfacl --version | head -1); $(zstd --version | head -1); kernel $(uname -r)"
echo "   scheduling: ${rt[*]:-normal (shared with whatever else runs)}"
echo "   filesystem of $W: $(findmnt -no FSTYPE,SOURCE -T "$W" | tr -s ' ')"

# under_w PATH: PATH is a directory strictly below $W (checked before anything chowns it).
under_w() { [[ -n $1 && $1 == "$W"/?* && -d $1 && ! -L $1 ]]; }

median() { sort -g | awk '{a[NR]=$1} END{print a[int((NR+1)/2)]}'; }

# timed OUT_VAR CMD...: wall seconds and peak RSS KiB of one run ("s kib").
timed() {
  local f t0 t1; f=$(mktemp -p "$W")
  t0=$EPOCHREALTIME
  "${rt[@]}" /usr/bin/time -f "%M" -o "$f" "$@" >/dev/null 2>&1 || true
  t1=$EPOCHREALTIME
  awk -v t0="$t0" -v t1="$t1" -v k="$(tail -1 "$f")" 'BEGIN{printf "%.4f %d\n", t1-t0, k}'
  rm -f "$f"
}

drop_caches() { sync; echo 3 > /proc/sys/vm/drop_caches; }

bench_tree() {
  local name=$1; shift
  local dir=$W/$name entries
  local made; made=$(env "$@" "$treegen" media "$dir" $SIZE)
  entries=${made#entries=}; entries=${entries%% *}
  under_w "$dir" || { echo "tree $dir is not below $W" >&2; exit 1; }
  echo
  echo "-- $name: $entries entries ($* treegen media $SIZE)"
  local base=$W/$name.baseline spec=$W/$name.mtree acl=$W/$name.acl

  # The tools' commands (file arguments fixed, so that every run does the same work).
  local -A cmd
  cmd[drift]="$hv drift $dir --uid 1000 --gid 110 --format json --samples 1 --no-progress"
  cmd[take]="$hv baseline take $dir -o $base --force --no-progress"
  cmd[check]="$hv baseline check $base --no-progress"
  cmd[mtree_c]="sh -c 'mtree -c -k uid,gid,mode,type -p $dir > $spec'"
  cmd[mtree_f]="mtree -f $spec -p $dir"
  cmd[getfacl]="sh -c 'getfacl -R -p $dir > $acl'"
  local tools=(drift take check mtree_c mtree_f getfacl)
  eval "${cmd[take]}" >/dev/null; eval "${cmd[mtree_c]}"; eval "${cmd[getfacl]}"

  # Peers equal: K owners and one mode changed; check and mtree -f name the same paths.
  find "$dir" -type f -print0 | sort -z | awk -v RS='\0' -v ORS='\0' 'NR % 997 == 1' > "$W/changed"
  local k; k=$(tr -cd '\0' < "$W/changed" | wc -c)
  xargs -0 -r chown -h 4321:4321 -- < "$W/changed"
  local one; one=$(head -z -n1 "$W/changed" | tr -d '\0')
  chmod 0600 -- "$one"
  getfacl -R -p "$dir" > "$W/acl.after" 2>/dev/null
  "$hv" baseline check "$base" --format json --samples 10000000 --no-progress > "$W/ours.json" || true
  { mtree -f "$spec" -p "$dir" || true; } | grep -v $'^\t' | sed 's/:[ \t].*$//; s/:$//' | sort > "$W/mtree.paths"
  python3 - "$W/ours.json" "$W/mtree.paths" "$dir" "$k" <<'PY'
import json, sys
rep = json.load(open(sys.argv[1]))
root, k = sys.argv[3], int(sys.argv[4])
ours = sorted({p[len(root) + 1:] for c in rep["changes"] for p in c["samples"] if c["change"] in ("owner", "mode")})
theirs = [l.strip() for l in open(sys.argv[2]) if l.strip()]
if ours != theirs or rep["owner"] != k or rep["mode"] != 1:
    sys.exit(f"MISMATCH: ours {len(ours)} paths (owner {rep['owner']}, mode {rep['mode']}), mtree {len(theirs)}, expected {k} owners and 1 mode;\n"
             f"  only ours: {sorted(set(ours) - set(theirs))[:5]}\n  only mtree: {sorted(set(theirs) - set(ours))[:5]}")
PY
  local aclk; aclk=$(diff <(grep -v '^#' "$acl") <(grep -v '^#' "$W/acl.after") | grep -c '^>' || true)
  echo "   peers agree: $k owners and 1 mode changed; baseline check and mtree -f name the same $k paths; getfacl -R differs in $aclk lines"
  "$hv" baseline restore "$base" --apply --journal "$W/$name.fix.journal" --no-progress >/dev/null || true
  "$hv" baseline check "$base" --no-progress >/dev/null || { echo "   restore did not bring the tree back" >&2; exit 1; }

  local -A wall rss cold
  for t in "${tools[@]}"; do
    eval "${cmd[$t]}" >/dev/null 2>&1 || true   # warm the cache
    local times=() maxr=0
    for ((i = 0; i < RUNS; i++)); do
      read -r s r < <(timed sh -c "${cmd[$t]}")
      times+=("$s"); (( r > maxr )) && maxr=$r
    done
    wall[$t]=$(printf '%s\n' "${times[@]}" | median)
    rss[$t]=$maxr
  done
  if (( ! quick )); then
    local -A colds
    for ((i = 0; i < COLD_RUNS; i++)); do
      for t in "${tools[@]}"; do
        drop_caches
        read -r s r < <(timed sh -c "${cmd[$t]}")
        colds[$t]+="$s "
      done
    done
    for t in "${tools[@]}"; do cold[$t]=$(printf '%s\n' ${colds[$t]} | median); done
  fi

  # Restore against chown doing the same number of changes: chown -R (every entry) is the
  # disaster and the peer; restore --apply puts every entry back and is checked each time.
  local ctimes=() rtimes=() rmax=0
  for ((i = 0; i < RUNS; i++)); do
    under_w "$dir" || exit 1
    read -r s r < <(timed chown -R 4321:4321 -- "$dir")
    ctimes+=("$s")
    rm -f -- "$W/$name.journal"
    read -r s r < <(timed "$hv" baseline restore "$base" --apply --journal "$W/$name.journal" --no-progress)
    rtimes+=("$s"); (( r > rmax )) && rmax=$r
    "$hv" baseline check "$base" --no-progress >/dev/null || { echo "   restore run $i left differences" >&2; exit 1; }
  done
  wall[chown_R]=$(printf '%s\n' "${ctimes[@]}" | median); rss[chown_R]=0
  wall[restore]=$(printf '%s\n' "${rtimes[@]}" | median); rss[restore]=$rmax

  printf '   %-9s %10s %12s %9s' tool "warm s" "entries/s" "RSS MiB"
  (( quick )) || printf ' %10s' "cold s"
  echo
  for t in "${tools[@]}" chown_R restore; do
    printf '   %-9s %10.3f %12.0f %9.1f' "$t" "${wall[$t]}" "$(awk -v e="$entries" -v s="${wall[$t]}" 'BEGIN{print (s>0?e/s:0)}')" \
      "$(awk -v k="${rss[$t]}" 'BEGIN{print k/1024}')"
    if (( ! quick )) && [[ -n ${cold[$t]:-} ]]; then printf ' %10.3f' "${cold[$t]}"; fi
    echo
  done
  ratio() { awk -v a="$1" -v b="$2" 'BEGIN{printf "%.2fx", (b>0?a/b:0)}'; }
  echo "   ratios (warm): take/drift $(ratio "${wall[take]}" "${wall[drift]}") (target <= 1.15x), check/drift $(ratio "${wall[check]}" "${wall[drift]}") (target <= 1.15x),"
  echo "                  mtree -c/take $(ratio "${wall[mtree_c]}" "${wall[take]}"), mtree -f/check $(ratio "${wall[mtree_f]}" "${wall[check]}"), getfacl -R/take $(ratio "${wall[getfacl]}" "${wall[take]}"),"
  echo "                  restore/chown -R $(ratio "${wall[restore]}" "${wall[chown_R]}") (target <= 1.5x)"
  if (( ! quick )); then
    echo "   ratios (cold): take/drift $(ratio "${cold[take]}" "${cold[drift]}"), check/drift $(ratio "${cold[check]}" "${cold[drift]}"), mtree -c/take $(ratio "${cold[mtree_c]}" "${cold[take]}"), mtree -f/check $(ratio "${cold[mtree_f]}" "${cold[check]}")"
  fi
  local bsize msize mz asize az
  bsize=$(stat -c %s "$base"); msize=$(stat -c %s "$spec"); asize=$(stat -c %s "$acl")
  mz=$(zstd -19 -q -c "$spec" | wc -c); az=$(zstd -19 -q -c "$acl" | wc -c)
  echo "   size: baseline $bsize B ($(awk -v b="$bsize" -v e="$entries" 'BEGIN{printf "%.3f", b/e}') B/entry); mtree -c $msize B, zstd -19 $mz B (baseline/mtree.zst $(ratio "$bsize" "$mz")); getfacl -R $asize B, zstd -19 $az B"
  rm -rf -- "$W/$name.journal" "$W/$name.fix.journal" "$acl" "$W/acl.after"
}

# bench_scale: the 10M tree on its own loop-mounted ext4 image below $W (so the host filesystem's
# inodes stay free), each step once: wall and peak RSS against the 64 MiB target.
# Not local: the EXIT trap reads them after the function has returned.
img=$W/ten-million.ext4 mnt=$W/ten-million
bench_scale() {
  mkdir -- "$mnt"
  truncate -s 24G -- "$img"
  mkfs.ext4 -q -N 11000000 -- "$img"
  mount -o loop -- "$img" "$mnt"
  # Unmounted before $W is removed, however the script ends.
  trap 'umount -- "$mnt" 2>/dev/null || umount -l -- "$mnt" 2>/dev/null || true; rm -rf -- "$W"' EXIT
  local dir=$mnt/mixed10m base=$mnt/mixed10m.baseline made entries t0
  under_w "$mnt" || { echo "mount point $mnt is not below $W" >&2; exit 1; }
  echo "   generating the mixed tree (treegen media 1000 100 100, every directory its own owner, 5 % exceptions) ..."
  t0=$EPOCHREALTIME
  made=$(TREEGEN_PER_DIR_OWNERS=1 TREEGEN_DRIFT_PPM=50000 "$treegen" media "$dir" 1000 100 100)
  entries=${made#entries=}; entries=${entries%% *}
  under_w "$dir" || { echo "tree $dir is not below $W" >&2; exit 1; }
  echo
  echo "-- mixed10m: $entries entries on $(findmnt -no SOURCE -T "$dir") (generated in $(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN{printf "%.0f", b-a}') s)"
  printf '   %-30s %9s %12s %9s\n' step "wall s" "entries/s" "RSS MiB"
  step() {
    local label=$1 s r; shift
    read -r s r < <(timed "$@")
    printf '   %-30s %9.2f %12.0f %9.1f\n' "$label" "$s" "$(awk -v e="$entries" -v s="$s" 'BEGIN{print (s>0?e/s:0)}')" \
      "$(awk -v k="$r" 'BEGIN{print k/1024}')"
  }
  step "drift scan" "$hv" drift "$dir" --uid 1000 --gid 110 --format json --samples 1 --no-progress
  step "baseline take" "$hv" baseline take "$dir" -o "$base" --force --no-progress
  echo "   baseline file: $(stat -c %s "$base") B ($(awk -v b="$(stat -c %s "$base")" -v e="$entries" 'BEGIN{printf "%.3f", b/e}') B/entry)"
  step "baseline check (as taken)" "$hv" baseline check "$base" --no-progress
  "$hv" baseline check "$base" --no-progress >/dev/null || { echo "   check of the tree as taken found differences" >&2; exit 1; }
  under_w "$dir" || exit 1
  step "chown -R 4321:4321 (the peer)" chown -R 4321:4321 -- "$dir"
  step "baseline check (all changed)" "$hv" baseline check "$base" --no-progress
  local n; n=$("$hv" baseline check "$base" --format json --samples 1 --no-progress | python3 -c 'import json,sys; print(json.load(sys.stdin)["owner"])' || true)
  echo "   check after chown -R: $n entries with another owner"
  step "baseline restore --apply" "$hv" baseline restore "$base" --apply --journal "$mnt/restore.journal" --no-progress
  step "baseline check (restored)" "$hv" baseline check "$base" --no-progress
  "$hv" baseline check "$base" --no-progress >/dev/null || { echo "   restore did not bring the tree back" >&2; exit 1; }
  echo "   journal: $(stat -c %s "$mnt/restore.journal") B"
}

if (( ten )); then
  bench_scale
  echo
  echo "benches/baseline.sh: done"
  exit 0
fi

if (( quick )); then SIZE="20 5 20"; else SIZE=${SIZE:-1000 10 100}; fi
bench_tree media TREEGEN_DRIFT_PPM=1500
bench_tree mixed TREEGEN_PER_DIR_OWNERS=1 TREEGEN_DRIFT_PPM=50000
echo
echo "benches/baseline.sh: done"
