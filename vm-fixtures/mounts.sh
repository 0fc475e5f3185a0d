#!/usr/bin/env bash
# The mount probe on a real kernel with real udev and real ext4 disks (by hand, not part of
# scripts/test-all yet: the VM-tests issue will wire VM runs into CI).
#
#   vm-fixtures/mounts.sh            build, make two disks, boot the installed Debian kernel under
#                                    QEMU (virtme-ng, software emulation) and run in the guest:
#     1. the oracle tests (tests/mount_oracle.rs) with a udev database: our block device
#        identity (libudev, feature `udev`) against lsblk, our mountinfo against findmnt -k;
#     2. homelab-verify on the scenarios of the reference runbook, made for real:
#        mounted by UUID; a disk unmounted and files written into its bare directory; a tmpfs
#        mounted on top; a read-only remount; --wait while the disk is mounted 8 s later.
#
# Needs: cargo, vng (virtme-ng), qemu-system-x86, a kernel in /boot, sfdisk (fdisk), mkfs.ext4.
# Disk 1 is GPT with one partition named "Plex Storage" holding ext4 UUID 7c1f0b7e-...,
# label PlexStorage; disk 2 is a whole-disk ext4 UUID 3b5e8d21-..., label "Plex Drive".
set -euo pipefail
cd "$(dirname "$0")/.."

STORAGE=7c1f0b7e-2d4a-4f61-9a53-3c5f2d1e9b10
DRIVE=3b5e8d21-6c0f-4a7e-9d12-8f4a6b2c1e07
kernel=${KERNEL:-$(ls /boot/vmlinuz-* | sort -V | tail -1)}

if [[ "${1:-}" != "--guest" ]]; then
  cargo build -q -p homelab-verify
  oracle=$(cargo test -q -p homelab-probe --test mount_oracle --no-run --message-format=json 2>/dev/null \
    | sed -n 's/.*"executable":"\([^"]*mount_oracle[^"]*\)".*/\1/p' | tail -1)
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
  truncate -s 80M "$work/storage.img"
  printf 'label: gpt\nstart=2048, type=L, name="Plex Storage", uuid=0e6b0f61-aaaa-4bbb-8ccc-123456789abc\n' \
    | sfdisk -q "$work/storage.img"
  mkfs.ext4 -q -F -U "$STORAGE" -L PlexStorage -E offset=1048576 "$work/storage.img" 70M
  truncate -s 64M "$work/drive.img"
  mkfs.ext4 -q -F -U "$DRIVE" -L "Plex Drive" "$work/drive.img"
  exec vng --run "$kernel" --disable-kvm --memory 1G \
    --overlay-rwdir /etc --overlay-rwdir /mnt \
    --disk "$work/storage.img" --disk "$work/drive.img" \
    --exec "ORACLE=$oracle $PWD/vm-fixtures/mounts.sh --guest"
fi

# --- in the guest ---
hv() { echo; echo "\$ homelab-verify $*"; target/debug/homelab-verify "$@" || echo "(exit $?)"; }
udevadm settle
cat > /etc/fstab <<EOF
# The runbook's data disks, by UUID, nofail.
UUID=$STORAGE /mnt/PlexStorage ext4 nofail 0 2
/dev/disk/by-uuid/$DRIVE /mnt/PlexDrive ext4 nofail 0 2
EOF
mkdir -p /mnt/PlexStorage /mnt/PlexDrive
echo "--- lsblk"; lsblk -o NAME,UUID,LABEL,FSTYPE,PARTUUID,PARTLABEL
echo "--- oracle tests"
"$ORACLE" --nocapture --test-threads 1
mount /mnt/PlexStorage
mount /mnt/PlexDrive
echo "--- oracle tests with the disks mounted"
"$ORACLE" --nocapture --test-threads 1 this_machines
target/debug/homelab-verify check --format json > /tmp/report.json || true
jq -c '.findings[] | select(.probe == "mounts") | [.check, .subject, .status]' /tmp/report.json
echo "--- 1. mounted by UUID"
hv check
echo "--- 2. PlexDrive not mounted, and something wrote into the bare directory"
umount /mnt/PlexDrive
mkdir -p "/mnt/PlexDrive/TV Shows/Severance" && echo x > "/mnt/PlexDrive/TV Shows/Severance/S01E01.mkv"
echo x > /mnt/PlexDrive/.plexmatch
hv check
echo "--- 3. a tmpfs mounted on top of /mnt/PlexStorage"
mount -t tmpfs scratch /mnt/PlexStorage
hv check
umount /mnt/PlexStorage
echo "--- 4. /mnt/PlexStorage remounted read-only"
mount -o remount,ro /mnt/PlexStorage
hv check
mount -o remount,rw /mnt/PlexStorage
echo "--- 5. --wait: the shadowed files are moved aside and the disk mounted 8 s later"
( sleep 8; mv -T /mnt/PlexDrive /mnt/PlexDrive.shadowed && mkdir /mnt/PlexDrive && mount /mnt/PlexDrive ) &
hv check --wait 30s
wait
