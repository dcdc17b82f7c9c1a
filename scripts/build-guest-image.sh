#!/usr/bin/env bash
# Builds the real test guest: a small x86-64 Debian bookworm "cloud image" (qcow2) that boots from
# its own disk under QEMU's default BIOS (SeaBIOS), like a downloaded cloud image, and is
# configured on first boot by cloud-init from a NoCloud seed.
#
# Contents: systemd, cloud-init (datasources NoCloud then None), qemu-guest-agent, openssh-server
# (no host keys: cloud-init makes them), sudo, Debian's cloud kernel, cloud-guest-utils (growpart),
# ifupdown + isc-dhcp-client (cloud-init's `eni` renderer applies network config).
#
# Kernel: `linux-image-cloud-amd64`, as in Debian's own genericcloud images. It has virtio
# (blk, scsi, net) but no AHCI driver, which is why the daemon attaches a Linux guest's NoCloud
# seed as a virtio-scsi CD-ROM; this image proves that placement on every test run.
# Serial console on ttyS0, empty machine-id, LANG=C.UTF-8, apt timers masked, no apt sources
# (nothing is downloaded at boot; cloud-init's `packages:` of installed packages is a no-op).
#
# Disk layout (MBR, 1 GiB virtual):
#   sector 0      syslinux mbr.bin (boot code) + partition table
#   partition 1   FAT, active: syslinux (ldlinux.sys), syslinux.cfg, vmlinuz, initrd.img
#   partition 2   ext4 root filesystem (last, so cloud-init's growpart can grow it), found by
#                 the initramfs through root=UUID=... (works on virtio, SATA, SCSI alike)
#
# Built without loop devices or mounts: mmdebstrap to a directory, `mke2fs -d` for the root
# filesystem (run in mmdebstrap's customize hook so file ownership is right in every mode),
# mkfs.fat + mtools + `syslinux --install` for the boot partition, sfdisk + dd on the image file,
# then `qemu-img convert -c -O qcow2`.
#
# The result is cached under ${XDG_CACHE_HOME:-$HOME/.cache}/limiquantix/ as
# guest-image-<first 16 hex digits of this script's sha256>.qcow2; a second run costs nothing.
# Builds are atomic: everything happens in a temporary directory, the image is renamed into place.
#
# Usage: build-guest-image.sh [--print-path] [--force]
#   --print-path  build if needed, then print only the image path on stdout (progress on stderr)
#   --force       rebuild even when the cached image exists
# Environment: LQ_DEBIAN_MIRROR, LQ_DEBIAN_SECURITY_MIRROR (default: deb.debian.org),
# TMPDIR (scratch space, ~2 GiB).
set -euo pipefail

print_path=0
force=0
for arg in "$@"; do
    case "$arg" in
        --print-path) print_path=1 ;;
        --force) force=1 ;;
        -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2; exit 0 ;;
        *) echo "usage: $0 [--print-path] [--force]" >&2; exit 2 ;;
    esac
done

log() { echo "build-guest-image: $*" >&2; }
die() { log "error: $*"; exit 1; }

script_hash="$(sha256sum "$0" | cut -c1-16)"
cache_root="${XDG_CACHE_HOME:-$HOME/.cache}/limiquantix"
out="$cache_root/guest-image-$script_hash.qcow2"

if [ "$force" = 0 ] && [ -s "$out" ]; then
    if [ "$print_path" = 1 ]; then echo "$out"; else log "cached: $out"; fi
    exit 0
fi

for tool in mmdebstrap mke2fs mkfs.fat mcopy mmd syslinux sfdisk qemu-img; do
    command -v "$tool" >/dev/null || die "$tool not found: run scripts/install-deps.sh"
done
mbr_bin=""
for candidate in /usr/lib/syslinux/mbr/mbr.bin /usr/lib/SYSLINUX/mbr.bin /usr/share/syslinux/mbr.bin; do
    if [ -s "$candidate" ]; then mbr_bin="$candidate"; break; fi
done
[ -n "$mbr_bin" ] || die "syslinux mbr.bin not found: install syslinux-common"

# Geometry, in MiB. The root partition takes everything after the boot partition.
disk_mib=1024
boot_start_mib=1
boot_mib=96
root_start_mib=$((boot_start_mib + boot_mib))
root_mib=$((disk_mib - root_start_mib))

work="$(mktemp -d "${TMPDIR:-/tmp}/lq-guest-image.XXXXXX")"
trap 'rm -rf "$work"' EXIT
chmod 0755 "$work"
mkdir -m 0777 "$work/out" # the customize hook may run as a mapped (unprivileged) root
root_uuid="$(cat /proc/sys/kernel/random/uuid)"
start=$SECONDS

packages=(
    systemd systemd-sysv udev dbus
    linux-image-cloud-amd64 initramfs-tools zstd
    cloud-init cloud-guest-utils fdisk e2fsprogs
    qemu-guest-agent openssh-server sudo
    ifupdown isc-dhcp-client iproute2 netbase
    procps less ca-certificates
)

# Everything that needs the root filesystem's ownership right runs in this hook: configuration
# files, the kernel and initrd copied out, and the ext4 image made with `mke2fs -d`.
# "$1" is the root filesystem directory; the hook's environment carries the settings.
customize_hook() {
    cat <<'HOOK'
set -eu
R="$1"
# Boot-time configuration of a cloud image.
: >"$R/etc/machine-id"
rm -f "$R/var/lib/dbus/machine-id" "$R"/etc/ssh/ssh_host_*
echo "debian" >"$R/etc/hostname"
printf '127.0.0.1 localhost\n::1 localhost ip6-localhost ip6-loopback\n' >"$R/etc/hosts"
echo "LANG=C.UTF-8" >"$R/etc/default/locale"
printf 'UUID=%s / ext4 defaults,errors=remount-ro 0 1\n' "$LQ_ROOT_UUID" >"$R/etc/fstab"
printf 'auto lo\niface lo inet loopback\n\nsource /etc/network/interfaces.d/*\n' \
    >"$R/etc/network/interfaces"
mkdir -p "$R/etc/cloud/cloud.cfg.d"
# ds-identify reads only a one-line list.
echo "datasource_list: [ NoCloud, None ]" >"$R/etc/cloud/cloud.cfg.d/90-limiquantix-datasource.cfg"
# RSA host keys take long to generate under emulation; ed25519 and ECDSA are enough.
echo "ssh_genkeytypes: [ ed25519, ecdsa ]" >"$R/etc/cloud/cloud.cfg.d/91-limiquantix-ssh.cfg"
# No apt timers waking up during tests; nothing to remount on a serial-only guest.
for unit in apt-daily.timer apt-daily-upgrade.timer apt-daily.service apt-daily-upgrade.service \
    e2scrub_all.timer fstrim.timer; do
    ln -sf /dev/null "$R/etc/systemd/system/$unit"
done
# No apt sources: the guest never downloads at boot, so a seed asking for packages that are
# already installed (qemu-guest-agent) finishes fast and offline.
rm -f "$R/etc/apt/sources.list" "$R"/etc/apt/sources.list.d/*
: >"$R/etc/apt/sources.list"
kver="$(ls "$R/lib/modules" | head -n1)"
echo "$kver" >"$LQ_OUT/kver"
# Drivers for hardware a VM does not have; then the module index and initramfs again.
for d in drivers/gpu drivers/media drivers/net/wireless drivers/infiniband drivers/staging \
    drivers/bluetooth drivers/isdn drivers/iio drivers/comedi drivers/usb/gadget \
    drivers/usb/serial drivers/hwmon drivers/mtd drivers/nfc drivers/video/fbdev sound net/bluetooth \
    net/wireless net/mac80211 net/mac802154 net/ieee802154; do
    rm -rf "$R/lib/modules/$kver/kernel/$d"
done
chroot "$R" depmod "$kver"
chroot "$R" update-initramfs -u -k "$kver" >/dev/null
# The kernel and initramfs live on the FAT boot partition; the root keeps the kernel config.
cp "$R/boot/vmlinuz-$kver" "$LQ_OUT/vmlinuz"
cp "$R/boot/initrd.img-$kver" "$LQ_OUT/initrd.img"
rm -f "$R/boot/initrd.img-$kver"
find "$R/lib/modules/$kver/kernel" -name 'isofs.ko*' -o -name 'ahci.ko*' -o -name 'sr_mod.ko*' \
    -o -name 'virtio_scsi.ko*' | sed 's|.*/||' >"$LQ_OUT/modules"
grep -E '^CONFIG_(ISO9660_FS|VIRTIO_BLK|SCSI_VIRTIO|SATA_AHCI|BLK_DEV_SR|EXT4_FS)=' "$R/boot/config-$kver" \
    >"$LQ_OUT/kconfig" || true
# Trim what a test guest never reads.
rm -rf "$R"/usr/share/doc/* "$R"/usr/share/man/* "$R"/usr/share/info/* "$R"/var/lib/apt/lists/* \
    "$R"/var/cache/apt/*.bin "$R"/var/cache/apt/archives/*.deb "$R"/var/cache/debconf/*-old \
    "$R"/var/log/*.log
find "$R/usr/share/locale" -mindepth 1 -maxdepth 1 ! -name 'locale.alias' -exec rm -rf {} + 2>/dev/null || true
# /proc, /sys and /dev are mounted while hooks run: copy the tree without them, then make the
# filesystem from the copy (same user namespace, so ownership stays right).
mkdir "$LQ_OUT/rootfs"
tar -C "$R" --one-file-system --exclude=./proc/* --exclude=./sys/* --exclude=./dev/* \
    --exclude=./run/* --exclude=./tmp/* -cf - . | tar -C "$LQ_OUT/rootfs" -xpf -
mkdir -p "$LQ_OUT/rootfs/proc" "$LQ_OUT/rootfs/sys" "$LQ_OUT/rootfs/dev" "$LQ_OUT/rootfs/run"
mkdir -p -m 1777 "$LQ_OUT/rootfs/tmp"
mke2fs -q -t ext4 -F -L rootfs -U "$LQ_ROOT_UUID" -E root_owner=0:0 -d "$LQ_OUT/rootfs" \
    "$LQ_OUT/root.img" "${LQ_ROOT_MIB}M"
du -sm "$LQ_OUT/rootfs" | cut -f1 >"$LQ_OUT/rootfs-mib"
rm -rf "$LQ_OUT/rootfs"
HOOK
}

mode=unshare
if [ "$(id -u)" = 0 ]; then mode=root; fi
# Explicit sources: without them mmdebstrap reads sources from a non-terminal stdin.
mirror="${LQ_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
security="${LQ_DEBIAN_SECURITY_MIRROR:-http://deb.debian.org/debian-security}"
mirror_args=("deb $mirror bookworm main" "deb $mirror bookworm-updates main"
    "deb $security bookworm-security main")

log "mmdebstrap ($mode mode): ${#packages[@]} packages, bookworm"
customize_hook >"$work/hook.sh"
LQ_ROOT_UUID="$root_uuid" LQ_OUT="$work/out" LQ_ROOT_MIB="$root_mib" \
    mmdebstrap --mode="$mode" --variant=minbase --arch=amd64 \
    --aptopt='APT::Install-Recommends "false"' \
    --dpkgopt='path-exclude=/usr/share/man/*' \
    --dpkgopt='path-exclude=/usr/share/doc/*' \
    --dpkgopt='path-include=/usr/share/doc/*/copyright' \
    --dpkgopt='path-exclude=/usr/share/info/*' \
    --include="$(IFS=,; echo "${packages[*]}")" \
    --customize-hook="sh $work/hook.sh \"\$1\"" \
    bookworm /dev/null "${mirror_args[@]}" </dev/null >&2 \
    || die "mmdebstrap failed"
log "root filesystem ($(cat "$work/out/rootfs-mib") MiB) built in $((SECONDS - start)) s (kernel $(cat "$work/out/kver"))"
# The guest reads its seed from an ISO 9660 CD-ROM on virtio-scsi: all of it must be built in or
# present as a module in the root filesystem.
for pair in ISO9660_FS:isofs BLK_DEV_SR:sr_mod SCSI_VIRTIO:virtio_scsi; do
    opt="${pair%%:*}" mod="${pair#*:}"
    grep -q "^CONFIG_$opt=[ym]" "$work/out/kconfig" || die "kernel lacks CONFIG_$opt"
    if grep -q "^CONFIG_$opt=m" "$work/out/kconfig" && ! grep -q "^$mod\.ko" "$work/out/modules"; then
        die "$mod module missing from the root filesystem"
    fi
done

# The boot partition: FAT with syslinux, the kernel and the initramfs.
kver="$(cat "$work/out/kver")"
boot="$work/boot.img"
mkfs.fat -C -F 16 -n LQBOOT -h $((boot_start_mib * 2048)) "$boot" $((boot_mib * 1024)) >/dev/null
# No SERIAL directive: syslinux prints through the BIOS console, which SeaBIOS mirrors to the
# serial port when QEMU runs with `-machine graphics=off` (a SERIAL line would print twice).
cat >"$work/syslinux.cfg" <<EOF
DEFAULT linux
PROMPT 0
TIMEOUT 0
LABEL linux
  LINUX /vmlinuz
  INITRD /initrd.img
  APPEND root=UUID=$root_uuid ro console=ttyS0,115200n8 net.ifnames=0
EOF
mcopy -i "$boot" "$work/out/vmlinuz" ::/vmlinuz
mcopy -i "$boot" "$work/out/initrd.img" ::/initrd.img
mcopy -i "$boot" "$work/syslinux.cfg" ::/syslinux.cfg
syslinux --install "$boot"

# The disk: MBR with the syslinux boot code, partitions placed with dd.
disk="$work/disk.raw"
truncate -s "${disk_mib}M" "$disk"
sfdisk --quiet --no-reread --no-tell-kernel "$disk" >/dev/null <<EOF
label: dos
unit: sectors

start=$((boot_start_mib * 2048)), size=$((boot_mib * 2048)), type=e, bootable
start=$((root_start_mib * 2048)), size=$((root_mib * 2048)), type=83
EOF
dd if="$mbr_bin" of="$disk" bs=440 count=1 conv=notrunc status=none
dd if="$boot" of="$disk" bs=1M seek="$boot_start_mib" conv=notrunc,sparse status=none
dd if="$work/out/root.img" of="$disk" bs=1M seek="$root_start_mib" conv=notrunc,sparse status=none

log "converting to compressed qcow2"
qemu-img convert -c -f raw -O qcow2 "$disk" "$work/image.qcow2"

mkdir -p "$cache_root"
mv -f "$work/image.qcow2" "$out.tmp.$$"
mv -f "$out.tmp.$$" "$out"
log "built $out ($(du -m "$out" | cut -f1) MiB, root UUID $root_uuid) in $((SECONDS - start)) s"
if [ "$print_path" = 1 ]; then echo "$out"; fi
