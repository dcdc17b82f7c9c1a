#!/usr/bin/env bash
# Builds the tiny test guest used by the QEMU lifecycle tests: a Debian cloud kernel plus a
# busybox initramfs whose /init prints a boot banner (with the kernel's random boot id) to the
# serial console, answers each line typed on the console with `LQ-TINY-GUEST ECHO <line>`, and
# powers off when the ACPI power button is pressed.
#
# No root, loop devices or mounts needed: the kernel comes from `apt-get download` + `dpkg-deb -x`,
# the initramfs is a cpio (newc) archive of a staging directory.
#
# The result is cached under ${XDG_CACHE_HOME:-$HOME/.cache}/limiquantix/tiny-guest-<script hash>/
# as `vmlinuz` and `initramfs.img`.
#
# Usage: build-tiny-guest.sh [--print-path]
#   --print-path  build if needed, then print only the cache directory on stdout.
set -euo pipefail

print_path=0
case "${1:-}" in
    --print-path) print_path=1 ;;
    "") ;;
    *) echo "usage: $0 [--print-path]" >&2; exit 2 ;;
esac

script_hash="$(sha256sum "$0" | cut -c1-16)"
cache_root="${XDG_CACHE_HOME:-$HOME/.cache}/limiquantix"
out="$cache_root/tiny-guest-$script_hash"

log() { echo "build-tiny-guest: $*" >&2; }

if [ -s "$out/vmlinuz" ] && [ -s "$out/initramfs.img" ]; then
    if [ "$print_path" = 1 ]; then echo "$out"; else log "cached: $out"; fi
    exit 0
fi

busybox="$(command -v busybox || true)"
if [ -z "$busybox" ] || ! file -L "$busybox" 2>/dev/null | grep -q 'statically linked'; then
    for candidate in /bin/busybox /usr/bin/busybox; do
        if [ -x "$candidate" ]; then busybox="$candidate"; fi
    done
fi
if [ -z "$busybox" ]; then
    log "busybox not found: install the busybox-static package"
    exit 1
fi

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

# Resolve the metapackage to the versioned kernel package it depends on.
resolve_kernel() {
    apt-cache depends linux-image-cloud-amd64 2>/dev/null \
        | awk '/Depends: linux-image-[0-9].*-cloud-amd64/ {print $2; exit}'
}
kpkg="$(resolve_kernel)"
if [ -z "$kpkg" ] && [ "$(id -u)" = 0 ]; then
    log "package lists lack linux-image-cloud-amd64; running apt-get update"
    apt-get update -q >&2
    kpkg="$(resolve_kernel)"
fi
if [ -z "$kpkg" ]; then
    log "cannot resolve linux-image-cloud-amd64 (run apt-get update first)"
    exit 1
fi
log "kernel package: $kpkg"
(cd "$work" && apt-get download -q "$kpkg" >&2 2>/dev/null) || (cd "$work" && apt-get download "$kpkg" >&2)
dpkg-deb -x "$work"/"$kpkg"_*.deb "$work/kernel"

kver="${kpkg#linux-image-}"
vmlinuz="$work/kernel/boot/vmlinuz-$kver"
moddir="$work/kernel/lib/modules/$kver/kernel"
if [ ! -s "$vmlinuz" ]; then
    log "kernel image missing in $kpkg"
    exit 1
fi

# The initramfs tree.
root="$work/root"
mkdir -p "$root"/{bin,sbin,dev,proc,sys,tmp,lib/modules}
cp "$busybox" "$root/bin/busybox"
for applet in sh mount umount cat echo sleep poweroff reboot insmod dd ls grep sed mkdir; do
    ln -s busybox "$root/bin/$applet"
done
# The ACPI power button and the event interface it reports through (modules on the cloud kernel).
for mod in drivers/input/evdev.ko drivers/acpi/button.ko; do
    if [ -f "$moddir/$mod" ]; then
        cp "$moddir/$mod" "$root/lib/modules/"
    elif [ -f "$moddir/$mod.xz" ]; then
        xz -dc "$moddir/$mod.xz" >"$root/lib/modules/$(basename "$mod")"
    elif [ -f "$moddir/$mod.zst" ]; then
        zstd -qdc "$moddir/$mod.zst" >"$root/lib/modules/$(basename "$mod")"
    fi
done

cat >"$root/init" <<'EOF'
#!/bin/sh
# Tiny test guest: banner on the serial console, power off on the ACPI power button.
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
exec 0</dev/console 1>/dev/console 2>&1
for m in /lib/modules/evdev.ko /lib/modules/button.ko; do
    [ -f "$m" ] && insmod "$m" 2>/dev/null
done
boot_id="$(cat /proc/sys/kernel/random/boot_id)"
echo "LQ-TINY-GUEST BOOT $boot_id"
# Answer every line typed on the console (the interactive console tests type into it). A
# background job's stdin is /dev/null unless redirected, hence the explicit redirections.
while IFS= read -r line; do
    echo "LQ-TINY-GUEST ECHO $line"
done </dev/console >/dev/console 2>&1 &
# Find the power button's event device (give udev-less devtmpfs a moment to create it; a
# loaded host running TCG can take many seconds).
dev=""
i=0
while [ -z "$dev" ] && [ $i -lt 600 ]; do
    for ev in /sys/class/input/event*; do
        [ -e "$ev/device/name" ] || continue
        if grep -q "Power Button" "$ev/device/name"; then
            dev="/dev/input/$(basename "$ev")"
        fi
    done
    [ -z "$dev" ] && sleep 0.1
    i=$((i + 1))
done
if [ -n "$dev" ]; then
    # Open the device before announcing readiness, so a press that follows READY is queued
    # on this descriptor instead of lost.
    exec 3<"$dev"
    echo "LQ-TINY-GUEST READY power-button=$dev"
    # The power button device only reports the power key: any event means "power off".
    until dd of=/dev/null bs=24 count=1 <&3 2>/dev/null; do sleep 1; done
    echo "LQ-TINY-GUEST POWEROFF"
    poweroff -f
else
    echo "LQ-TINY-GUEST READY power-button=none"
    while true; do sleep 3600; done
fi
EOF
chmod 0755 "$root/init"

mkdir -p "$work/out"
(cd "$root" && find . -print0 | LC_ALL=C sort -z \
    | cpio --null -o -H newc -R 0:0 --quiet) | gzip -9n >"$work/out/initramfs.img"
cp "$vmlinuz" "$work/out/vmlinuz"

mkdir -p "$cache_root"
rm -rf "$out.tmp.$$"
mv "$work/out" "$out.tmp.$$"
if ! mv -T "$out.tmp.$$" "$out" 2>/dev/null; then
    # Another build finished first; keep its result.
    rm -rf "$out.tmp.$$"
fi

if [ "$print_path" = 1 ]; then echo "$out"; else log "built: $out"; fi
