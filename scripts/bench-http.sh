#!/usr/bin/env bash
# Latency of the node's HTTP face: 200 sequential requests each with curl (a new connection and,
# for HTTPS, a new TLS handshake per request, as the control plane's Go client makes for each
# call), p50 and p99; one discovery. Usage: scripts/bench-http.sh [TARGET_DIR] (default
# target/debug; build first).
set -euo pipefail
bin=${1:-target/debug}
dir=$(mktemp -d /tmp/lq-bench-http.XXXXXX)
mkdir -p "$dir/pool"
"$bin/limiquantix-node" --state-dir "$dir/state" --run-dir "$dir/run" --accel tcg \
    --pool "p=$dir/pool" --http-listen 127.0.0.1:18443 --image-http-listen 127.0.0.1:18080 \
    --allow-from 127.0.0.1 >"$dir/log" 2>&1 &
pid=$!
trap 'kill $pid; wait $pid 2>/dev/null; rm -rf "$dir"' EXIT
for _ in $(seq 50); do [ -S "$dir/run/limiquantix-node.sock" ] && break; sleep 0.2; done
sock=(--socket "$dir/run/limiquantix-node.sock")
token=$("$bin/lqctl" "${sock[@]}" node token create)
bench() {
    local name=$1 url=$2; shift 2
    for _ in $(seq 200); do curl -sk -o /dev/null -w '%{time_total}\n' "$@" "$url"; done |
        sort -n | awk -v n="$name" '{a[NR]=$1} END {printf "%-28s p50 %.1f ms  p99 %.1f ms\n", n, a[int(NR*0.5)]*1000, a[int(NR*0.99)]*1000}'
}
bench "HTTPS ping" https://127.0.0.1:18443/api/v1/registration/ping
bench "HTTPS token check" https://127.0.0.1:18443/api/v1/registration/token -H "Authorization: Bearer $token"
bench "HTTP download job status" http://127.0.0.1:18080/api/v1/images/download/none
printf '%-28s %.1f ms\n' "HTTPS discovery (once)" "$(curl -sk -o /dev/null -w '%{time_total}' \
    -H "Authorization: Bearer $token" https://127.0.0.1:18443/api/v1/registration/discovery | awk '{print $1*1000}')"
uptime
