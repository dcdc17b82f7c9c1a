#!/usr/bin/env bash
# From a fresh Debian/Ubuntu machine to a running, cloud-init-configured VM you can ssh into.
#
#   scripts/quickstart.sh                         # builds the small Debian test image and boots it
#   scripts/quickstart.sh ./noble-server-cloudimg-amd64.img
#   scripts/quickstart.sh https://.../noble-server-cloudimg-amd64.img --sha256 HEX
#
# Steps: installs dependencies (scripts/install-deps.sh), builds the daemon and lqctl (release),
# puts the cloud image in ./.lq/state/images (a URL is downloaded with curl, checked against
# --sha256 when given), starts limiquantix-node on ./.lq/state and ./.lq/run (accelerator from
# LQ_ACCEL: auto, kvm or tcg; default auto), creates a VM with the default cloud-init (user
# `admin` with your SSH key: ~/.ssh/id_ed25519.pub, else ~/.ssh/id_rsa.pub, else a throwaway key
# made in ./.lq), starts it, waits until cloud-init is done, and prints how to reach it and how to
# stop everything. Run it again to reuse the running daemon and create another VM.
#
# Options:
#   --name NAME      the VM's name and hostname (default: quickstart-N, first free N)
#   --sha256 HEX     expected sha256 of the image given by URL or path
#   --memory SIZE    guest memory (default 1G)
#   --cpus N         vCPUs (default 2)
#   --disk-size SIZE disk size, e.g. 10G (default: the image's size)
#   --timeout DUR    how long to wait for ready (default 15m)
#   --stop           stop and delete the quickstart VMs, then stop the daemon
set -euo pipefail
cd "$(dirname "$0")/.."
repo="$(pwd)"

lq="$repo/.lq"
state="$lq/state"
run="$lq/run"
socket="$run/limiquantix-node.sock"
log() { echo "quickstart: $*" >&2; }
die() { log "error: $*"; exit 1; }

image_src=""
sha256=""
name=""
memory="1G"
cpus=2
disk_size=""
timeout="15m"
stop=0
while [ $# -gt 0 ]; do
    case "$1" in
        --name) name="$2"; shift 2 ;;
        --sha256) sha256="$2"; shift 2 ;;
        --memory) memory="$2"; shift 2 ;;
        --cpus) cpus="$2"; shift 2 ;;
        --disk-size) disk_size="$2"; shift 2 ;;
        --timeout) timeout="$2"; shift 2 ;;
        --stop) stop=1; shift ;;
        -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        -*) die "unknown option $1 (see --help)" ;;
        *) [ -z "$image_src" ] || die "one image only"; image_src="$1"; shift ;;
    esac
done

bin="${CARGO_TARGET_DIR:-$repo/target}/release"
lqctl() { "$bin/lqctl" --socket "unix:$socket" "$@"; }
daemon_pid() {
    local pid
    pid="$(cat "$lq/daemon.pid" 2>/dev/null || true)"
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then echo "$pid"; fi
}

if [ "$stop" = 1 ]; then
    if [ -n "$(daemon_pid)" ]; then
        for vm in $(lqctl -o json vm list 2>/dev/null \
            | python3 -c 'import json,sys; [print(v.get("name","")) for v in json.load(sys.stdin) if str(v.get("name","")).startswith("quickstart-") or v.get("labels",{}).get("lq.quickstart")]' 2>/dev/null); do
            log "stopping and deleting $vm"
            lqctl vm stop --force "$vm" >/dev/null 2>&1 || true
            lqctl vm delete "$vm" >/dev/null 2>&1 || true
        done
        pid="$(daemon_pid)"
        log "stopping the daemon (pid $pid)"
        kill "$pid"
    else
        log "no daemon running from $state"
    fi
    exit 0
fi

# 1. Dependencies and the build.
./scripts/install-deps.sh >&2
if [ -f "$HOME/.cargo/env" ]; then . "$HOME/.cargo/env"; fi
log "building (cargo build --release)"
cargo build --release --locked -p limiquantix-node -p lqctl >&2

# 2. The image, in the daemon's image library.
mkdir -p "$state/images" "$run"
chmod 0700 "$lq"
verify_sha() {
    [ -z "$sha256" ] && return 0
    echo "$sha256  $1" | sha256sum --check --status || die "sha256 of $1 does not match $sha256"
}
case "$image_src" in
    "")
        log "no image given: building the Debian test image (first time: a few minutes)"
        src="$(./scripts/build-guest-image.sh --print-path)"
        image_name="lq-test-debian-bookworm.qcow2"
        if [ ! -e "$state/images/$image_name" ]; then
            ln "$src" "$state/images/$image_name" 2>/dev/null || cp "$src" "$state/images/$image_name"
        fi
        ;;
    http://* | https://*)
        image_name="$(basename "${image_src%%\?*}")"
        if [ ! -e "$state/images/$image_name" ]; then
            log "downloading $image_src"
            curl -fL --retry 3 -C - -o "$lq/$image_name.part" "$image_src" \
                || die "download of $image_src failed"
            verify_sha "$lq/$image_name.part"
            mv "$lq/$image_name.part" "$state/images/$image_name"
        fi
        ;;
    *)
        [ -f "$image_src" ] || die "image $image_src not found"
        verify_sha "$image_src"
        image_name="$(basename "$image_src")"
        if [ ! -e "$state/images/$image_name" ]; then
            ln "$image_src" "$state/images/$image_name" 2>/dev/null \
                || cp "$image_src" "$state/images/$image_name"
        fi
        ;;
esac

# 3. The daemon, detached, on the local state directory (QEMUs survive it; it re-adopts them).
if [ -z "$(daemon_pid)" ]; then
    log "starting limiquantix-node (state $state, accel ${LQ_ACCEL:-auto})"
    setsid "$bin/limiquantix-node" --state-dir "$state" --run-dir "$run" \
        --accel "${LQ_ACCEL:-auto}" --listen "unix:$socket" \
        >>"$lq/daemon.log" 2>&1 </dev/null &
    echo $! >"$lq/daemon.pid"
    for _ in $(seq 1 100); do
        [ -S "$socket" ] && lqctl node info >/dev/null 2>&1 && break
        kill -0 "$(cat "$lq/daemon.pid")" 2>/dev/null || die "the daemon exited; see $lq/daemon.log"
        sleep 0.1
    done
    [ -S "$socket" ] || die "the daemon did not listen on $socket; see $lq/daemon.log"
fi

# 4. An SSH key for the guest's admin user.
key=""
for candidate in "$HOME/.ssh/id_ed25519.pub" "$HOME/.ssh/id_rsa.pub" "$lq/id_ed25519.pub"; do
    if [ -f "$candidate" ]; then key="$candidate"; break; fi
done
if [ -z "$key" ]; then
    ssh-keygen -q -t ed25519 -N "" -C "limiquantix-quickstart" -f "$lq/id_ed25519" </dev/null
    key="$lq/id_ed25519.pub"
    log "made a throwaway SSH key: $lq/id_ed25519"
fi
identity=""
if [ "$key" = "$lq/id_ed25519.pub" ]; then identity=" -i $lq/id_ed25519"; fi

# 5. The VM.
if [ -z "$name" ]; then
    n=1
    existing="$(lqctl -o json vm list 2>/dev/null || echo '[]')"
    while grep -q "\"quickstart-$n\"" <<<"$existing"; do n=$((n + 1)); done
    name="quickstart-$n"
fi
create=(vm create "$name" --image "$image_name" --cpus "$cpus" --memory "$memory"
    --ssh-key "$key" --label lq.quickstart=1 --start --wait --timeout "$timeout")
if [ -n "$disk_size" ]; then create+=(--disk-size "$disk_size"); fi
log "creating $name from $image_name and waiting until cloud-init is done"
line="$(lqctl "${create[@]}")"
echo "$line"
ssh_cmd="$(grep -o 'ssh -p [0-9]* [^ ]*' <<<"$line" || true)"
if [ -n "$ssh_cmd" ]; then
    reach="${ssh_cmd/ssh /ssh$identity }"
else
    reach="no SSH port forward; see lqctl --socket unix:$socket vm show $name"
fi

cat <<EOF

The VM is ready.
  Reach it:        $reach
  Its console log: lqctl --socket unix:$socket vm logs $name
  Everything else: lqctl --socket unix:$socket vm --help
  Stop it all:     scripts/quickstart.sh --stop   (stops and deletes the quickstart VMs, then the daemon)
Daemon log: $lq/daemon.log   State: $state
EOF
