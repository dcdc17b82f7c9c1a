#!/usr/bin/env bash
# The whole test suite, as CI runs it: installs what the tests need, builds (or reuses the cached)
# test guest image, checks formatting, unused dependencies and lints, and runs every test against
# real QEMU under TCG.
set -euo pipefail
cd "$(dirname "$0")/.."

./scripts/install-deps.sh
if [ -f "$HOME/.cargo/env" ]; then . "$HOME/.cargo/env"; fi

# The test guest image is cached outside the checkout, keyed by its build script's hash.
if [ -x scripts/build-guest-image.sh ]; then
    LQ_TEST_GUEST_IMAGE="$(./scripts/build-guest-image.sh --print-path)"
    export LQ_TEST_GUEST_IMAGE
fi

# The tiny test guest (kernel + busybox initramfs) for the QEMU lifecycle tests, cached the same way.
if [ -x scripts/build-tiny-guest.sh ]; then
    LQ_TINY_GUEST_DIR="$(./scripts/build-tiny-guest.sh --print-path)"
    export LQ_TINY_GUEST_DIR
fi

export LQ_TEST_ACCEL="${LQ_TEST_ACCEL:-tcg}"
# The Python with grpcio that install-deps.sh set up (the gRPC C-core client test).
export LQ_TEST_PYTHON="${LQ_TEST_PYTHON:-${XDG_CACHE_HOME:-$HOME/.cache}/limiquantix/venv-grpcio/bin/python3}"

cargo fmt --all -- --check
# Files and functions a reader can hold (500 and 80 lines, tests excepted).
python3 scripts/check-sizes.py
# No unused dependency (false positives: [package.metadata.cargo-machete] in the crate's manifest).
cargo machete
cargo clippy --workspace --all-targets --locked -- -D warnings
cargo test --workspace --locked
# The Debian package, installed, run and removed as an operator would (root only; skipped
# elsewhere outside CI). CI packages the dev-profile binaries, which share most of the tests'
# build (a release build from scratch would double the run); scripts/build-deb.sh builds
# releases by default.
LQ_DEB_PROFILE="${LQ_DEB_PROFILE:-dev}" LQ_DEB_AFTER_TESTS=1 ./scripts/test-deb.sh
