#!/usr/bin/env bash
# Whole-process seed benchmark: `lqctl seed OUT USER_DATA` against `cloud-localds OUT USER_DATA`
# on the same two-line #cloud-config, run alternately as separate processes (spawn, dynamic
# linking, argument parsing, validation against cloud-init's installed schema, writing the ISO,
# exit), with a `#!` script seed and `--no-schema` to show what validation costs. Neither side
# syncs the image to disk (lqctl does with --fsync). Prints the
# median wall time of each and the ratio cloud-localds / lqctl (goal: >= 5).
#
# Usage: bench-seed-process.sh [--runs N] [--lqctl PATH]
#   --runs N      processes per variant (default 200, in blocks of 20)
#   --lqctl PATH  the lqctl binary (default: cargo build --release, target/release/lqctl)
# Needs cloud-localds (cloud-image-utils) and cloud-init's schema (cloud-init), both installed
# by scripts/install-deps.sh.
set -euo pipefail
cd "$(dirname "$0")/.."

runs=200
lqctl=""
while [ $# -gt 0 ]; do
    case "$1" in
        --runs) runs="$2"; shift 2 ;;
        --lqctl) lqctl="$2"; shift 2 ;;
        *) echo "usage: $0 [--runs N] [--lqctl PATH]" >&2; exit 2 ;;
    esac
done
if [ -z "$lqctl" ]; then
    cargo build --release --quiet -p lqctl
    lqctl="${CARGO_TARGET_DIR:-target}/release/lqctl"
fi
command -v cloud-localds >/dev/null || { echo "cloud-localds missing (apt-get install cloud-image-utils)" >&2; exit 1; }

work="$(mktemp -d "${TMPDIR:-/tmp}/lq-bench-seed.XXXXXX")"
trap 'rm -rf "$work"' EXIT
printf '#cloud-config\nhostname: web1\n' >"$work/cloud-config"
printf '#!/bin/sh\necho hi\n' >"$work/script"

python3 - "$runs" "$lqctl" "$work" <<'PY'
import os, statistics, sys, time

runs, lqctl, work = int(sys.argv[1]), sys.argv[2], sys.argv[3]
cc, script = os.path.join(work, "cloud-config"), os.path.join(work, "script")
variants = {
    "lqctl seed (#cloud-config, schema)": [lqctl, "seed", os.path.join(work, "a.iso"), cc],
    "lqctl seed --no-schema": [lqctl, "seed", "--no-schema", os.path.join(work, "b.iso"), cc],
    "lqctl seed (#! script)": [lqctl, "seed", os.path.join(work, "c.iso"), script],
    "cloud-localds": ["cloud-localds", os.path.join(work, "d.iso"), cc],
}
devnull = os.open(os.devnull, os.O_WRONLY)
actions = [(os.POSIX_SPAWN_DUP2, devnull, 1), (os.POSIX_SPAWN_DUP2, devnull, 2)]


def run(argv):
    """Wall time of one process, from spawn to its exit (posix_spawn: no shell, no pipes)."""
    start = time.perf_counter()
    pid = os.posix_spawnp(argv[0], argv, os.environ, file_actions=actions)
    _, status = os.waitpid(pid, 0)
    elapsed = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"{argv} failed: {status}")
    return elapsed


times = {name: [] for name in variants}
for name, argv in variants.items():  # warm the page cache
    run(argv)
# Blocks of 20 per variant, the variants taking turns: a process started right after
# cloud-localds (a shell script of several processes) is slowed by what it leaves behind.
block = 20
for _ in range(max(1, runs // block)):
    for name, argv in variants.items():
        time.sleep(0.2)  # let the previous block's writeback and exits settle
        times[name].extend(run(argv) for _ in range(block))
med = {name: statistics.median(t) * 1000 for name, t in times.items()}
print(f"load average {os.getloadavg()[0]:.2f}, {runs} processes each, median wall time:")
for name, ms in med.items():
    print(f"  {name:<38} {ms:8.2f} ms")
ratio = med["cloud-localds"] / med["lqctl seed (#cloud-config, schema)"]
print(f"ratio cloud-localds / lqctl seed (#cloud-config, schema): {ratio:.1f}x (goal >= 5x)")
PY
