# Helpers for the guest side of the VM scenarios (sourced by the generated guest.sh, bash).
# A scenario's script runs in its own directory under $SHARE (shared with the host) with
# `set -eux -o pipefail`; what it records there is what the host asserts on:
#   verify NAME [ARGS...]   homelab-verify check --format json ARGS -> NAME.json, NAME.rc, NAME.stderr
#   oracle NAME CMD...      any command (the oracle the probe is compared with) -> NAME.out/.err/.rc
# Both always return 0, so a check that fails (exit 1) does not stop the script; anything else
# that fails does, and the host reports the scenario as failed with guest.log.

# Whether udevd runs (no pidof/pgrep: they are not in every base system).
udevd_running() {
  grep -qx systemd-udevd /proc/[0-9]*/comm 2>/dev/null
}

# JSON with the guest's kernel, so the host knows the VM really booted and ran this.
boot_info() {
  printf '{"kernel": "%s", "init": "%s", "udevd": %s}\n' \
    "$(uname -r)" "$(cat /proc/1/comm)" "$(if udevd_running; then echo true; else echo false; fi)"
}

verify() {
  local name=$1
  shift
  local rc=0
  "$HV" check --format json "$@" >"$name.json" 2>"$name.stderr" || rc=$?
  echo "$rc" >"$name.rc"
  echo "verify $name: exit $rc" >&2
}

oracle() {
  local name=$1
  shift
  local rc=0
  "$@" >"$name.out" 2>"$name.err" || rc=$?
  echo "$rc" >"$name.rc"
  echo "oracle $name: exit $rc" >&2
}

# Waits until udevd has processed every queued event.
udev_settle() {
  udevadm settle --timeout=120
}

# Restarts udevd the way that makes it re-resolve GROUP= names (docs/render-node.md, "The udev
# stale-gid trap"): stop it, wait until it is gone, start it, wait until it answers. There is no
# systemd in the guest (virtme-ng's own init starts udevd), so no `systemctl restart`.
udevd_restart() {
  udevadm control --exit
  local i
  for i in $(seq 1 120); do
    udevd_running || break
    sleep 0.5
  done
  if udevd_running; then
    echo "udevd did not exit" >&2
    return 1
  fi
  /lib/systemd/systemd-udevd --daemon
  udevadm control --ping --timeout=60
}

# Detaches the virtio disk that holds the filesystem with UUID $1, as pulling its cable would:
# virtio_blk lets go of the device, the kernel removes vdX (and its partitions), udev removes
# the /dev/disk links. Prints the virtio device's name, for virtio_attach.
virtio_detach() {
  local dev blk virt
  dev=$(readlink -f "/dev/disk/by-uuid/$1")
  blk=$(basename "$dev")
  # A partition's sysfs directory sits inside its disk's.
  if [ -e "/sys/class/block/$blk/partition" ]; then
    blk=$(basename "$(dirname "$(readlink -f "/sys/class/block/$blk")")")
  fi
  virt=$(basename "$(readlink -f "/sys/class/block/$blk/device")")
  echo "$virt" >/sys/bus/virtio/drivers/virtio_blk/unbind
  udev_settle
  echo "$virt"
}

# Attaches a disk detached by virtio_detach again (the kernel probes it anew, udev adds its links).
virtio_attach() {
  echo "$1" >/sys/bus/virtio/drivers/virtio_blk/bind
  udev_settle
}

# Runs one scenario variant: the guest.sh in $SHARE/DIR, output in guest.log, exit code and time
# in guest.json. $BREAK names a deliberate break (empty normally).
run_scenario() {
  local dir=$SHARE/$1 brk=$2
  local t0 t1 rc
  t0=$(date +%s.%N)
  # Not `( ... ) || rc=$?`: bash ignores `set -e` inside a subshell that is part of an || list.
  (
    cd "$dir"
    export BREAK=$brk
    # Each traced command with the guest's clock, so guest.log shows where the time goes.
    PS4='+ ${EPOCHREALTIME} '
    set -eux -o pipefail
    # shellcheck disable=SC1091
    . ./guest.sh
  ) >"$dir/guest.log" 2>&1
  rc=$?
  t1=$(date +%s.%N)
  printf '{"rc": %d, "seconds": %s}\n' "$rc" "$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }')" \
    >"$dir/guest.json"
}
