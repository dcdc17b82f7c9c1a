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
cat >"$work/user-data.fallback" <<EOF
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
found, prev, pending = [], 0.0, []
def stamped(line):
    ts, _, text = line.partition(" ")
    try:
        return float(ts), text
    except ValueError:
        return None
# Lines end at "\n" only: SeaBIOS's console (graphics=off) writes bare carriage returns.
with open(sys.argv[1], encoding="utf-8", errors="replace", newline="\n") as f:
    lines = [p for p in map(stamped, f) if p]
for name, rx in marks:
    pending.append(name)
    t = next((ts for ts, text in lines if rx.search(text)), None)
    if t is None:
        continue  # not on this console: merged into the next phase
    found.append("%s=%.1f" % ("+".join(pending), t - prev))
    prev, pending = t, []
print("  ".join(found) + "  total=%.1f" % prev)
EOF
}

finished_re='Cloud-init v\. \S+ finished'

# Waits for the tailer, stops QEMU, checks the boot finished with the seed found.
finish_boot() { # dir label tail_pid qemu_pid_or_empty
    wait "$3" || true
    if [ -n "$4" ]; then kill "$4" 2>/dev/null || true; wait "$4" 2>/dev/null || true; fi
    if ! grep -qE "$finished_re" "$1/serial.ts"; then
        echo "bench-boot: $2 did not finish within ${boot_timeout}s (see $1)" >&2
        return 1
    fi
    if ! grep -qE "$finished_re.*DataSourceNoCloud" "$1/serial.ts"; then
        echo "bench-boot: $2 did not find its NoCloud seed (see $1/serial.ts)" >&2
        return 1
    fi
}

# One boot by hand: overlay, seed, QEMU with the daemon's device layout (read from its command
# line: q35 with graphics=off, -cpu max, the disk first on virtio-blk, the seed as a SCSI CD-ROM
# on virtio-scsi, a user-mode virtio NIC without option ROM, the guest-agent channel, serial to a
# file, virtio-vga with VNC on localhost); returns when cloud-init reports finished.
boot_by_hand() {
    local dir="$work/hand-$1"
    mkdir -p "$dir"
    printf 'instance-id: bench-hand-%s\nlocal-hostname: bench\n' "$1" >"$dir/meta-data"
    local t0
    t0="$(date +%s.%N)"
    qemu-img create -q -f qcow2 -F qcow2 -b "$image" "$dir/disk-0.qcow2" 4G
    cloud-localds "$dir/cloud-init.iso" "$user_data" "$dir/meta-data"
    python3 "$work/tail.py" "$dir/serial.log" "$t0" "$dir/serial.ts" "$finished_re" \
        "$boot_timeout" &
    local tail_pid=$!
    qemu-system-x86_64 -nodefaults -no-user-config -name guest=bench -machine type=q35,graphics=off \
        -accel "$accel" -cpu max -smp "cpus=$cpus,sockets=1,cores=$cpus,threads=1" -m "${mem}M" \
        -rtc base=utc -boot strict=on -device virtio-scsi-pci,id=scsi0 \
        -drive "if=none,id=disk0,file=$dir/disk-0.qcow2,format=qcow2,discard=unmap" \
        -device virtio-blk-pci,drive=disk0,bootindex=1 \
        -drive "if=none,id=seed,file=$dir/cloud-init.iso,format=raw,readonly=on,media=cdrom" \
        -device scsi-cd,drive=seed,bus=scsi0.0 \
        -netdev user,id=net0 -device virtio-net-pci,netdev=net0,romfile= \
        -chardev "socket,id=qga0,path=$dir/qga.sock,server=on,wait=off" \
        -device virtio-serial-pci,id=vserial0 \
        -device virtserialport,chardev=qga0,name=org.qemu.guest_agent.0 \
        -chardev "file,id=serial0,path=$dir/serial.log,append=on" -device isa-serial,chardev=serial0 \
        -device virtio-vga -display none -vnc 127.0.0.1:0,to=99 \
        >"$dir/qemu.log" 2>&1 &
    local qemu_pid=$!
    pids+=("$qemu_pid")
    finish_boot "$dir" "by-hand boot $1" "$tail_pid" "$qemu_pid"
}

# One boot through the daemon: lqctl vm create --start (CreateVM: overlay + default seed;
# StartVM), until cloud-init reports finished on the VM's serial console.
boot_by_daemon() {
    local dir="$work/daemon-$1" name="bench-$1"
    mkdir -p "$dir"
    local t0
    t0="$(date +%s.%N)"
    lqctl vm create "$name" --image "$image_name" --cpus "$cpus" --memory "${mem}M" \
        --disk-size 4G --ssh-key "$work/key.pub" --ssh-port off --start >/dev/null
    local id
    id="$(lqctl -o json vm show "$name" | python3 -c 'import json,sys; d=json.load(sys.stdin); print(d.get("vm_id") or d.get("id"))')"
    python3 "$work/tail.py" "$state/vms/$id/serial.log" "$t0" "$dir/serial.ts" "$finished_re" \
        "$boot_timeout" &
    local tail_pid=$!
    finish_boot "$dir" "daemon boot $1" "$tail_pid" ""
    local status=$?
    # The same user-data on the by-hand side: the daemon's own default seed.
    if [ ! -s "$work/user-data" ]; then
        isoinfo -i "$state/vms/$id/cloud-init.iso" -R -x /user-data >"$work/user-data"
    fi
    lqctl vm stop --force "$name" >/dev/null 2>&1 || true
    lqctl vm delete "$name" >/dev/null 2>&1 || true
    return $status
}

median() { sort -n | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
total_of() { awk '/total=/ {for (i=1;i<=NF;i++) if ($i ~ /^total=/) {sub("total=","",$i); print $i}}'; }

echo "bench-boot: image $image ($(du -m "$image" | cut -f1) MiB), accel $accel, ${cpus} vCPU, ${mem} MiB, $runs run(s) per side" >&2
user_data="$work/user-data"
if [ "$hand_only" = 1 ]; then
    cp "$work/user-data.fallback" "$user_data"
    for i in $(seq 1 "$runs"); do
        boot_by_hand "$i"
        printf 'by hand  #%s  %s\n' "$i" "$(phases "$work/hand-$i/serial.ts")" | tee -a "$work/hand.txt"
    done
    exit 0
fi

# The daemon, on a scratch state directory, with the image in its library.
command -v isoinfo >/dev/null || { echo "bench-boot: isoinfo (genisoimage) is needed" >&2; exit 1; }
bin="${CARGO_TARGET_DIR:-target}/release"
[ -x "$bin/limiquantix-node" ] && [ -x "$bin/lqctl" ] \
    || cargo build --release --locked -p limiquantix-node -p lqctl >&2
state="$work/state"
run="$work/run"
mkdir -p "$state/images" "$run"
image_name="bench-image.qcow2"
ln "$image" "$state/images/$image_name" 2>/dev/null || cp "$image" "$state/images/$image_name"
"$bin/limiquantix-node" --state-dir "$state" --run-dir "$run" --accel "$accel" \
    --listen "unix:$run/node.sock" >"$work/daemon.log" 2>&1 </dev/null &
daemon_pid=$!
lqctl() { "$bin/lqctl" --socket "unix:$run/node.sock" "$@"; }
for _ in $(seq 1 100); do lqctl node info >/dev/null 2>&1 && break; sleep 0.1; done

for i in $(seq 1 "$runs"); do
    boot_by_daemon "$i"
    printf 'daemon   #%s  %s\n' "$i" "$(phases "$work/daemon-$i/serial.ts")" | tee -a "$work/daemon.txt"
    boot_by_hand "$i"
    printf 'by hand  #%s  %s\n' "$i" "$(phases "$work/hand-$i/serial.ts")" | tee -a "$work/hand.txt"
done
d="$(total_of <"$work/daemon.txt" | median)"
h="$(total_of <"$work/hand.txt" | median)"
python3 -c "import sys; d,h=float(sys.argv[1]),float(sys.argv[2]); print('median start-to-cloud-init-finished: daemon %.1f s, by hand %.1f s, ratio %.3f (goal <= 1.02)' % (d,h,d/h))" "$d" "$h"
