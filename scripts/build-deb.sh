#!/usr/bin/env bash
# Builds the Debian package of limiquantix-node: the daemon and lqctl (release build, stripped),
# the systemd unit, the commented default config as a conffile, lqctl's bash completion, the
# state directories, a tmpfiles.d entry for /run/limiquantix and the maintainer scripts from
# packaging/deb/. The package is assembled with `dpkg-deb --build --root-owner-group` from a
# staged tree: no cargo subcommand or debhelper needed (dpkg-dev comes with build-essential).
#
# Usage: scripts/build-deb.sh [--out DIR] [--profile PROFILE]
#   --out DIR          where the .deb goes (default: <cargo target dir>/debian)
#   --profile PROFILE  cargo profile of the binaries (default: release)
# The path of the .deb is the last line on stdout; the build's progress goes to stderr.
# LQ_DEB_AFTER_TESTS=1 with the dev profile (set by scripts/test.sh) packages the binaries
# `cargo test --workspace` built instead of building the two binaries alone.
#
# Package version: the workspace version (a SemVer pre-release `-rc.1` becomes `~rc.1`) with
# Debian revision 1. Maintainer: DEBFULLNAME and DEBEMAIL when set. Dates come from
# SOURCE_DATE_EPOCH, else the last commit.
set -euo pipefail
cd "$(dirname "$0")/.."
umask 022

log() { echo "build-deb: $*" >&2; }
die() { log "error: $*"; exit 1; }

out=""
profile="release"
while [ $# -gt 0 ]; do
    case "$1" in
        --out) [ $# -ge 2 ] || die "--out needs a directory"; out="$2"; shift 2 ;;
        --out=*) out="${1#--out=}"; shift ;;
        --profile) [ $# -ge 2 ] || die "--profile needs a name"; profile="$2"; shift 2 ;;
        --profile=*) profile="${1#--profile=}"; shift ;;
        -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) die "unknown argument $1 (see --help)" ;;
    esac
done

for tool in cargo dpkg-deb dpkg python3 gzip strip; do
    command -v "$tool" >/dev/null || die "$tool is missing (scripts/install-deps.sh installs it)"
done

pkg="limiquantix-node"
# One cargo metadata call: the package's version and the target directory.
metadata="$(cargo metadata --format-version 1 --no-deps --locked | python3 -c 'import json, sys
m = json.load(sys.stdin)
print(next(p["version"] for p in m["packages"] if p["name"] == "limiquantix-node"))
print(m["target_directory"])')" || die "cargo metadata failed"
version="$(sed -n 1p <<<"$metadata")"
target_dir="$(sed -n 2p <<<"$metadata")"
deb_version="${version/-/\~}-1"
arch="$(dpkg --print-architecture)"
case "$profile" in
    dev) bin_dir="$target_dir/debug" ;;
    *) bin_dir="$target_dir/$profile" ;;
esac
out="${out:-$target_dir/debian}"
mkdir -p "$out"
out="$(cd "$out" && pwd)"
deb="$out/${pkg}_${deb_version}_${arch}.deb"

# Not exported to cargo: the cc crate tracks SOURCE_DATE_EPOCH, and a new value would rebuild
# the C code of ring.
epoch="${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || date +%s)}"
commit="$(git rev-parse --short=12 HEAD 2>/dev/null || true)"
maintainer="${DEBFULLNAME:-limiquantix-node maintainers} <${DEBEMAIL:-limiquantix-node@users.noreply.github.com}>"

log "building limiquantix-node and lqctl ($profile profile)"
if [ "${LQ_DEB_AFTER_TESTS:-}" = 1 ] && [ "$profile" = dev ]; then
    # Right after `cargo test --workspace` (scripts/test.sh): the binaries the tests ran, with
    # the dependency features the tests unify in. Building the two binaries alone resolves
    # features without the test dependencies and would rebuild most of the workspace.
    cargo build --locked --workspace --bins --tests >&2
else
    cargo build --locked --profile "$profile" -p limiquantix-node -p lqctl --bins >&2
fi

stage="$(mktemp -d "$target_dir/deb-stage.XXXXXX")"
trap 'rm -rf "$stage"' EXIT
root="$stage/root"
doc="$root/usr/share/doc/$pkg"

# Binaries, stripped as dh_strip does (lintian: unstripped-binary-or-object).
install -d "$root/usr/bin"
for bin in limiquantix-node lqctl; do
    install -m 0755 "$bin_dir/$bin" "$root/usr/bin/$bin"
    strip --strip-unneeded --remove-section=.comment --remove-section=.note "$root/usr/bin/$bin"
done

install -D -m 0644 packaging/limiquantix-node.service \
    "$root/lib/systemd/system/limiquantix-node.service"
install -D -m 0644 packaging/limiquantix-node.toml "$root/etc/limiquantix/limiquantix-node.toml"
install -D -m 0644 packaging/deb/limiquantix-node.tmpfiles \
    "$root/usr/lib/tmpfiles.d/limiquantix-node.conf"
install -d "$root/usr/share/bash-completion/completions"
"$root/usr/bin/lqctl" completion bash >"$root/usr/share/bash-completion/completions/lqctl"
chmod 0644 "$root/usr/share/bash-completion/completions/lqctl"
# The state tree (dpkg removes these on removal only while they are empty); /run is made by
# tmpfiles.d, the unit's RuntimeDirectory= and the postinst, never shipped.
install -d -m 0750 "$root/var/lib/limiquantix" "$root/var/lib/limiquantix/images" \
    "$root/var/lib/limiquantix/pools"
install -d -m 0700 "$root/var/lib/limiquantix/vms"

# Documentation: copyright (with the Rust crates linked into the binaries), the Debian changelog
# and the project's changelog.
install -d "$doc"
{
    echo "Comment: The binaries link these Rust crates statically (name, version, license):"
    cargo tree --locked -e normal,no-proc-macro --prefix none -f '{p} {l}' -p limiquantix-node -p lqctl \
        | sed -e '/^$/d' -e 's/ (\*)$//' -e 's/ ([^)]*)//' | sort -u | sed 's/^/ /'
} >"$stage/crates"
first_year="$(git log --max-parents=0 --format=%ad --date=format:%Y 2>/dev/null | sort | sed -n 1p \
    || true)"
last_year="$(date -u -d "@$epoch" +%Y)"
years="${first_year:-$last_year}"
if [ "$years" != "$last_year" ]; then years="$years-$last_year"; fi
sed -e "/^Source:/r $stage/crates" -e "s/@YEARS@/$years/" packaging/deb/copyright >"$doc/copyright"
{
    echo "$pkg ($deb_version) unstable; urgency=medium"
    echo
    echo "  * limiquantix-node $version${commit:+ (commit $commit)}, packaged from its repository."
    echo "    The project's changes are in /usr/share/doc/$pkg/changelog.gz."
    echo
    echo " -- $maintainer  $(date -u -R -d "@$epoch")"
} | gzip -9n >"$doc/changelog.Debian.gz"
gzip -9n <CHANGELOG.md >"$doc/changelog.gz"
chmod 0644 "$doc"/*
install -D -m 0644 packaging/deb/lintian-overrides "$root/usr/share/lintian/overrides/$pkg"

# Shared libraries the binaries need: dpkg-shlibdeps reads the ELF files (it wants a
# debian/control beside it); without it, libc6 from the build's glibc.
shlibs=""
if command -v dpkg-shlibdeps >/dev/null; then
    mkdir -p "$stage/debian"
    printf 'Source: %s\n\nPackage: %s\nArchitecture: any\n' "$pkg" "$pkg" >"$stage/debian/control"
    if substvars="$(cd "$stage" && dpkg-shlibdeps -O root/usr/bin/limiquantix-node \
        root/usr/bin/lqctl 2>/dev/null)"; then
        shlibs="$(sed -n 's/^shlibs:Depends=//p' <<<"$substvars")"
    fi
fi
if [ -z "$shlibs" ]; then
    glibc="$(dpkg-query -W -f '${Version}' libc6 | sed 's/-[^-]*$//')"
    shlibs="libc6 (>= $glibc)"
fi

install -d "$root/DEBIAN"
for script in postinst prerm postrm; do
    install -m 0755 "packaging/deb/$script" "$root/DEBIAN/$script"
done
echo /etc/limiquantix/limiquantix-node.toml >"$root/DEBIAN/conffiles"
# Checksums of every file but the conffiles, as dh_md5sums writes them (dpkg --verify).
(cd "$root" && find . -type f ! -path './DEBIAN/*' ! -path './etc/*' -printf '%P\0' | sort -z \
    | xargs -0 md5sum) >"$root/DEBIAN/md5sums"
chmod 0644 "$root/DEBIAN/md5sums"
installed_size="$(du -sk --exclude=DEBIAN "$root" | cut -f1)"
cat >"$root/DEBIAN/control" <<EOF
Package: $pkg
Version: $deb_version
Architecture: $arch
Maintainer: $maintainer
Installed-Size: $installed_size
Depends: $shlibs, qemu-system-x86 | qemu-system-x86-64, qemu-utils, ovmf
Recommends: cloud-init
Section: admin
Priority: optional
Homepage: https://github.com/limiquantix/limiquantix-node
Description: QEMU/KVM VM host daemon and its command line
 limiquantix-node turns a Linux host into a VM host: it defines, boots and
 manages QEMU/KVM virtual machines, builds them from cloud images and
 provisions them with cloud-init through a NoCloud seed it writes itself.
 It serves the limiquantix.node.v1 gRPC API on a Unix socket (TCP only with
 TLS) and ships lqctl, a command line for people.
 .
 The service is not enabled on install: edit
 /etc/limiquantix/limiquantix-node.toml, then run
 systemctl enable --now limiquantix-node. cloud-init, when installed, gives
 the daemon cloud-init's schema to check user-data against.
EOF

# Every file dated from SOURCE_DATE_EPOCH, so the same commit gives the same package.
find "$root" -exec touch -h -d "@$epoch" {} +
rm -f "$deb"
SOURCE_DATE_EPOCH="$epoch" dpkg-deb --root-owner-group -Zxz --build "$root" "$deb" >&2
log "built $deb"
echo "$deb"
