#!/usr/bin/env bash
# Boot benchmark: the test guest image booted to "cloud-init finished", by hand
# (`qemu-img create` overlay + `cloud-localds` seed + `qemu-system-x86_64`) and through the daemon
# (lqctl vm create --start, then wait for ready), in the same run, alternating. Prints each run's
# phases from serial-console timestamps (firmware, boot loader, kernel + early userspace, the four
# cloud-init stages) and the ratio daemon / by hand of the medians (goal: <= 1.02).
#
# Usage: bench-boot.sh [--runs N] [--image PATH] [--hand-only]
#   --runs N      boots per side (default 1; each boot takes about a minute under TCG)
#   --image PATH  the cloud image (default: scripts/build-guest-image.sh --print-path)
#   --hand-only   only the by-hand side
# Environment: LQ_ACCEL (tcg|kvm, default tcg), LQ_BENCH_MEM_MIB (1024), LQ_BENCH_CPUS (2),
# LQ_BENCH_TIMEOUT (seconds per boot, default 300).
set -euo pipefail
cd "$(dirname "$0")/.."

runs=1
image=""
hand_only=0
while [ $# -gt 0 ]; do
    case "$1" in
        --runs) runs="$2"; shift 2 ;;
        --image) image="$2"; shift 2 ;;
        --hand-only) hand_only=1; shift ;;
        *) echo "usage: $0 [--runs N] [--image PATH] [--hand-only]" >&2; exit 2 ;;
    esac
done
accel="${LQ_ACCEL:-tcg}"
mem="${LQ_BENCH_MEM_MIB:-1024}"
cpus="${LQ_BENCH_CPUS:-2}"
boot_timeout="${LQ_BENCH_TIMEOUT:-300}"
[ -n "$image" ] || image="$(./scripts/build-guest-image.sh --print-path)"
image="$(realpath "$image")"

work="$(mktemp -d "${TMPDIR:-/tmp}/lq-bench-boot.XXXXXX")"
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    if [ -n "${daemon_pid:-}" ]; then kill "$daemon_pid" 2>/dev/null || true; fi
    rm -rf "$work"
}
trap cleanup EXIT

# A throwaway SSH key for the guest's admin user (the same user-data on both sides).
ssh-keygen -q -t ed25519 -N "" -C bench -f "$work/key" </dev/null
cat >"$work/user-data" <<EOF
#cloud-config
hostname: bench
users:
  - name: admin
    sudo: "ALL=(ALL) NOPASSWD:ALL"
    shell: /bin/bash
    ssh_authorized_keys:
      - "$(cat "$work/key.pub")"
EOF

# Timestamps serial-console lines as they are written: "<seconds since start> <line>".
cat >"$work/tail.py" <<'EOF'
import os, re, sys, time
path, t0, out = sys.argv[1], float(sys.argv[2]), open(sys.argv[3], "w")
until = re.compile(sys.argv[4])
deadline = time.time() + float(sys.argv[5])
while not os.path.exists(path):
    time.sleep(0.01)
f, buf = open(path, "rb"), b""
while time.time() < deadline:
    data = f.read()
    if not data:
        time.sleep(0.01)
        continue
    buf += data
    while b"\n" in buf:
        line, buf = buf.split(b"\n", 1)
        text = line.decode("utf-8", "replace").rstrip("\r")
        out.write("%.3f %s\n" % (time.time() - t0, text))
        out.flush()
        if until.search(text):
            sys.exit(0)
sys.exit(1)
EOF

# Phase table from a timestamped serial log.
phases() {
    python3 - "$1" <<'EOF'
import re, sys
marks = [
    ("qemu+firmware", re.compile(r"Booting from|SYSLINUX|GRUB|ISOLINUX")),
    ("loader", re.compile(r"Linux version")),
    ("kernel+systemd", re.compile(r"running 'init-local'")),
    ("init-local", re.compile(r"running 'init'")),
    ("init", re.compile(r"running 'modules:config'")),
    ("modules:config", re.compile(r"running 'modules:final'")),
    ("modules:final", re.compile(r"Cloud-init v\. \S+ finished")),
]
found, prev = [], 0.0
lines = [l.split(" ", 1) for l in open(sys.argv[1]) if " " in l]
for name, rx in marks:
    t = next((float(ts) for ts, text in lines if rx.search(text)), None)
    if t is None:
        found.append("%s=?" % name)
        continue
    found.append("%s=%.1f" % (name, t - prev))
    prev = t
print("  ".join(found) + "  total=%.1f" % prev)
EOF
}

finished_re='Cloud-init v\. \S+ finished'

# One boot by hand: overlay, seed, QEMU; returns when cloud-init reports finished on the console.
boot_by_hand() {
    local dir="$work/hand-$1"
    mkdir -p "$dir"
    printf 'instance-id: bench-%s\nlocal-hostname: bench\n' "$1" >"$dir/meta-data"
    local t0
    t0="$(date +%s.%N)"
    qemu-img create -q -f qcow2 -F qcow2 -b "$image" "$dir/disk-0.qcow2" 4G
    cloud-localds "$dir/cloud-init.iso" "$work/user-data" "$dir/meta-data"
    python3 "$work/tail.py" "$dir/serial.log" "$t0" "$dir/serial.ts" "$finished_re" \
        "$boot_timeout" &
    local tail_pid=$!
    # The daemon's layout: q35 with SeaBIOS's serial console (graphics=off), the disk first on
    # virtio-blk, the seed as a CD-ROM on virtio-scsi (Debian's cloud kernel has no AHCI), a
    # user-mode virtio NIC without option ROM, the guest agent channel.
    qemu-system-x86_64 -machine q35,graphics=off -accel "$accel" -m "$mem" -smp "$cpus" -nodefaults \
        -display none -serial "file:$dir/serial.log" \
        -drive "if=none,id=disk0,file=$dir/disk-0.qcow2,format=qcow2" \
        -device virtio-blk-pci,drive=disk0,bootindex=1 \
        -drive "if=none,id=seed,file=$dir/cloud-init.iso,format=raw,readonly=on,media=cdrom" \
        -device virtio-scsi-pci,id=scsi0 -device scsi-cd,drive=seed,bus=scsi0.0 \
        -netdev user,id=net0 -device virtio-net-pci,netdev=net0,romfile= \
        -chardev "socket,id=qga0,path=$dir/qga.sock,server=on,wait=off" \
        -device virtio-serial-pci -device virtserialport,chardev=qga0,name=org.qemu.guest_agent.0 \
        >"$dir/qemu.log" 2>&1 &
    local qemu_pid=$!
    pids+=("$qemu_pid")
    wait "$tail_pid" || true
    kill "$qemu_pid" 2>/dev/null || true
    wait "$qemu_pid" 2>/dev/null || true
    if ! grep -qE "$finished_re" "$dir/serial.ts"; then
        echo "bench-boot: by-hand boot $1 did not finish within ${boot_timeout}s" >&2
        return 1
    fi
    if ! grep -qE "$finished_re.*DataSourceNoCloud" "$dir/serial.ts"; then
        echo "bench-boot: by-hand boot $1 did not find its NoCloud seed (see $dir/serial.ts)" >&2
        return 1
    fi
}

echo "bench-boot: image $image ($(du -m "$image" | cut -f1) MiB), accel $accel, ${cpus} vCPU, ${mem} MiB, $runs run(s) per side" >&2
for i in $(seq 1 "$runs"); do
    boot_by_hand "$i"
    printf 'by hand  #%s  %s\n' "$i" "$(phases "$work/hand-$i/serial.ts")"
done
if [ "$hand_only" = 1 ]; then exit 0; fi
