#!/usr/bin/env bash
# Installs everything limiquantix-node needs to build, run and test on Debian/Ubuntu:
# QEMU, the ISO and cloud-init tools the tests compare against, the guest-image build tools,
# Python's grpcio (pinned, in a virtualenv under the cache directory) for the gRPC C-core client
# test, a Rust toolchain when none is present, and cargo-machete. Safe to run again.
set -euo pipefail

SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive

stamp_dir="${XDG_CACHE_HOME:-$HOME/.cache}/limiquantix"
stamp="$stamp_dir/deps-$(sha256sum "$0" | cut -c1-16)"

# gRPC C-core's Python binding (grpcio, from PyPI, pinned) for the test of C-core clients on the
# Unix socket (crates/limiquantix-node/tests/grpcio_unix.rs), in a virtualenv of its own: Debian's
# pip refuses to install into the system Python. The test finds it at this path.
GRPCIO_VERSION=1.85.3
grpc_venv="$stamp_dir/venv-grpcio"
grpcio_ok() {
    "$grpc_venv/bin/python3" -c \
        "import grpc, sys; sys.exit(grpc.__version__ != '$GRPCIO_VERSION')" 2>/dev/null
}

if [ -e "$stamp" ] && command -v qemu-system-x86_64 >/dev/null && command -v cargo >/dev/null \
    && cargo machete --version >/dev/null 2>&1 && grpcio_ok; then
    echo "install-deps: already done ($stamp)"
    exit 0
fi

$SUDO apt-get update -q

pkgs=(
    # the hypervisor and disk tools
    qemu-system-x86 ovmf seabios
    # seed tools and the conformance oracles the tests compare against
    xorriso genisoimage cloud-image-utils python3-yaml cloud-init util-linux openssl
    # guest image build, without loop devices or mounts
    mmdebstrap uidmap syslinux syslinux-common mtools dosfstools e2fsprogs fdisk
    debian-archive-keyring
    # quickstart and the boot benchmark (throwaway SSH keys)
    openssh-client
    # tiny test guests
    busybox-static cpio
    # the Python of the grpcio test (its virtualenv)
    python3 python3-venv
    # the toolchain's C needs (build-essential brings dpkg-dev: dpkg-shlibdeps for the package)
    build-essential pkg-config curl ca-certificates
    # the Debian package's checks (scripts/test-deb.sh)
    lintian
)

# qemu-utils must come from the same release as qemu-system-x86: a newer qemu-utils
# (backports) declares Breaks on an older qemu-system-common. Pin both to the candidate
# version of qemu-system-x86.
qver="$(apt-cache policy qemu-system-x86 | awk '/Candidate:/ {print $2}')"
pkgs+=("qemu-utils=$qver")
if dpkg -s qemu-block-extra >/dev/null 2>&1; then pkgs+=("qemu-block-extra=$qver"); fi

$SUDO apt-get install -y -q --no-install-recommends --allow-downgrades "${pkgs[@]}"

if ! command -v cargo >/dev/null; then
    curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal \
        --component clippy,rustfmt
    # shellcheck disable=SC1091
    . "$HOME/.cargo/env"
fi

# cargo-machete: scripts/test.sh fails on an unused dependency. Pinned; built from crates.io.
machete_version=0.9.2
if ! cargo machete --version >/dev/null 2>&1; then
    cargo install cargo-machete --version "$machete_version" --locked
fi

mkdir -p "$stamp_dir"
if ! grpcio_ok; then
    rm -rf "$grpc_venv"
    /usr/bin/python3 -m venv "$grpc_venv"
    "$grpc_venv/bin/pip" install --quiet --disable-pip-version-check --only-binary=:all: \
        "grpcio==$GRPCIO_VERSION"
    grpcio_ok
fi

touch "$stamp"
echo "install-deps: done"
