#!/usr/bin/env bash
# Tests the Debian package the way an operator uses it: builds it (scripts/build-deb.sh), installs
# it with apt (dependencies pulled in), checks its files, modes and dpkg fields, runs the installed
# daemon for real (the installed config file, with state and run directories overridden by flags,
# TCG) and talks to it with the installed lqctl, stops it with SIGTERM, then removes and purges
# the package and checks what stays. Runs lintian on the package when it is installed.
#
# It needs root and a machine where the package is not installed and /etc/limiquantix does not
# exist (the purge removes it). Elsewhere it is skipped, except under CI (CI=true), where that
# is a failure. scripts/test.sh runs it after the cargo tests.
#
# Usage: scripts/test-deb.sh [--deb FILE]   (default: build the package first)
# Environment:
#   LQ_DEB_PROFILE        cargo profile of the packaged binaries (default release)
#   LQ_DEB_CONTROL_PLANE  a control plane URL for the installed daemon (--control-plane URL), for
#                         the step that runs it against a control-plane test double
set -euo pipefail
cd "$(dirname "$0")/.."

pkg="limiquantix-node"
conf="/etc/limiquantix/limiquantix-node.toml"
log() { echo "test-deb: $*" >&2; }
fail() { log "FAILED: $*"; exit 1; }
skip() {
    if [ "${CI:-}" = true ]; then fail "$* (CI must run this test)"; fi
    log "skipped: $*"
    exit 0
}

deb=""
case "${1:-}" in
    --deb) [ $# -ge 2 ] || fail "--deb needs a file"; deb="$(realpath "$2")" ;;
    "") ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) fail "unknown argument $1 (see --help)" ;;
esac

[ "$(id -u)" = 0 ] || skip "needs root (it installs and removes the package)"
status="$(dpkg-query -W -f '${Status}' "$pkg" 2>/dev/null || true)"
case "$status" in
    "" | *not-installed) ;;
    *) skip "$pkg is on this machine ($status); the test would purge it" ;;
esac
[ ! -e /etc/limiquantix ] || skip "/etc/limiquantix exists; the purge would remove it"
[ -d /run/systemd/system ] && log "note: systemd runs here; the package must still not start the daemon"

started=$SECONDS
phase() { log "$* (at $((SECONDS - started)) s)"; }

tmp="$(mktemp -d /tmp/lq-deb.XXXXXX)"
daemon_pid=""
had_state_dir=0
if [ -e /var/lib/limiquantix ]; then had_state_dir=1; fi
keep="/var/lib/limiquantix/images/lq-deb-test.keep"
cleanup() {
    local rc=$?
    if [ -n "$daemon_pid" ] && kill -0 "$daemon_pid" 2>/dev/null; then
        kill -TERM "$daemon_pid" 2>/dev/null || true
        wait "$daemon_pid" 2>/dev/null || true
    fi
    if [ "$rc" != 0 ] && [ -s "$tmp/daemon.log" ]; then
        log "daemon log:"
        sed 's/^/    /' "$tmp/daemon.log" >&2
    fi
    # Leave the machine as it was: no package, no test files.
    if dpkg-query -W -f '${Status}' "$pkg" 2>/dev/null | grep -qv not-installed; then
        dpkg -P "$pkg" >/dev/null 2>&1 || true
    fi
    rm -f "$keep"
    if [ "$had_state_dir" = 0 ]; then
        rmdir /var/lib/limiquantix/{images,pools,vms} /var/lib/limiquantix 2>/dev/null || true
    fi
    rm -rf "$tmp"
    exit "$rc"
}
trap cleanup EXIT

# Checks.
check_mode() { # PATH MODE [OWNER]
    local got
    got="$(stat -c '%a %U:%G' "$1" 2>/dev/null)" || fail "$1 is missing"
    [ "$got" = "$2 ${3:-root:root}" ] || fail "$1 is $got, expected $2 ${3:-root:root}"
}
contains() { # WHAT TEXT NEEDLE
    grep -qF -- "$3" <<<"$2" || fail "$1 lacks '$3'; it is:"$'\n'"$2"
}
absent() { [ ! -e "$1" ] || fail "$1 should be gone"; }
field() { dpkg-query -W -f "\${$1}" "$pkg"; }

# 1. Build.
if [ -z "$deb" ]; then
    phase "building the package (${LQ_DEB_PROFILE:-release} profile)"
    deb="$(./scripts/build-deb.sh --out "$tmp/out" --profile "${LQ_DEB_PROFILE:-release}" | tail -n 1)"
fi
[ -f "$deb" ] || fail "no package at $deb"
version="$(dpkg-deb -f "$deb" Version)"
upstream="${version%-*}"
upstream="${upstream/\~/-}"
phase "package $(basename "$deb") ($(du -h "$deb" | cut -f1))"
if command -v lintian >/dev/null; then
    lintian --fail-on error --display-level '>=warning' "$deb" >&2 || fail "lintian reports errors"
fi

# 2. Install as an operator does (apt resolves the dependencies).
phase "installing with apt-get"
install_log="$(DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$deb" 2>&1)" \
    || fail "apt-get install failed:"$'\n'"$install_log"
contains "the install's output" "$install_log" "systemctl enable --now limiquantix-node"

[ "$(field Status)" = "install ok installed" ] || fail "status is $(field Status)"
[ "$(field Version)" = "$version" ] || fail "version is $(field Version)"
[ "$(field Architecture)" = "$(dpkg --print-architecture)" ] || fail "wrong architecture"
depends="$(field Depends)"
for dep in "libc6 (>= " "qemu-system-x86 | qemu-system-x86-64" "qemu-utils" "ovmf"; do
    contains "Depends" "$depends" "$dep"
done
[ "$(field Recommends)" = "cloud-init" ] || fail "Recommends is '$(field Recommends)'"
contains "Conffiles" "$(field Conffiles)" "$conf "

check_mode /usr/bin/limiquantix-node 755
check_mode /usr/bin/lqctl 755
check_mode /lib/systemd/system/limiquantix-node.service 644
check_mode "$conf" 644
check_mode /usr/lib/tmpfiles.d/limiquantix-node.conf 644
check_mode /usr/share/bash-completion/completions/lqctl 644
check_mode /usr/share/doc/$pkg/copyright 644
check_mode /usr/share/doc/$pkg/changelog.Debian.gz 644
check_mode /var/lib/limiquantix 750
check_mode /var/lib/limiquantix/vms 700
check_mode /var/lib/limiquantix/images 750
check_mode /var/lib/limiquantix/pools 750
check_mode /run/limiquantix 750
check_mode /run/limiquantix/vms 700
cmp -s packaging/limiquantix-node.toml "$conf" || fail "$conf differs from packaging/"
for line in "ExecStart=/usr/bin/limiquantix-node --config $conf" "KillMode=process"; do
    grep -qxF "$line" /lib/systemd/system/limiquantix-node.service || fail "the unit lacks $line"
done
contains "the tmpfiles.d entry" "$(cat /usr/lib/tmpfiles.d/limiquantix-node.conf)" \
    "d /run/limiquantix 0750 root root -"
completion="$(bash -c '. /usr/share/bash-completion/completions/lqctl && complete -p lqctl')"
contains "lqctl's completion" "$completion" "lqctl"
zcat /usr/share/doc/$pkg/changelog.Debian.gz | head -n 1 | grep -qF "$pkg ($version)" \
    || fail "changelog.Debian.gz does not start with this version"
# Installed, not enabled, not started.
absent /etc/systemd/system/multi-user.target.wants/limiquantix-node.service
absent /run/limiquantix/limiquantix-node.sock
contains "limiquantix-node --version" "$(/usr/bin/limiquantix-node --version)" "$upstream"
contains "lqctl --version" "$(/usr/bin/lqctl --version)" "$upstream"

# 3. The installed daemon with the installed config; flags move its state and run directories.
printed="$(/usr/bin/limiquantix-node --config "$conf" --print-config)"
contains "--print-config" "$printed" '"state_dir": "/var/lib/limiquantix"'
contains "--print-config" "$printed" '"run_dir": "/run/limiquantix"'
sock="$tmp/run/limiquantix-node.sock"
daemon_args=(--config "$conf" --state-dir "$tmp/state" --run-dir "$tmp/run" --accel tcg)
# Hook for the control-plane step: the daemon registers with the test double at this URL.
if [ -n "${LQ_DEB_CONTROL_PLANE:-}" ]; then
    daemon_args+=(--control-plane "$LQ_DEB_CONTROL_PLANE")
fi
printed="$(/usr/bin/limiquantix-node "${daemon_args[@]}" --print-config)"
contains "--print-config with flags" "$printed" "\"state_dir\": \"$tmp/state\""
contains "--print-config with flags" "$printed" "\"images_dir\": \"$tmp/state/images\""
contains "--print-config with flags" "$printed" "\"unix:$sock\""
contains "--print-config with flags" "$printed" '"accel": "tcg"'

phase "starting the installed daemon"
/usr/bin/limiquantix-node "${daemon_args[@]}" >"$tmp/daemon.log" 2>&1 </dev/null &
daemon_pid=$!
for _ in $(seq 1 300); do
    [ -S "$sock" ] && break
    kill -0 "$daemon_pid" 2>/dev/null || fail "the daemon exited"
    sleep 0.1
done
[ -S "$sock" ] || fail "the daemon did not listen on $sock within 30 s"
check_mode "$sock" 660
lqctl=(/usr/bin/lqctl --socket "unix:$sock")
info="$("${lqctl[@]}" node info)" || fail "lqctl node info failed"
contains "lqctl node info" "$info" "hostname:"
contains "lqctl node info" "$info" "limiquantix-node $upstream"
contains "lqctl version" "$("${lqctl[@]}" version)" "limiquantix-node $upstream ("
[ "$("${lqctl[@]}" -o json vm list | tr -d '[:space:]')" = "[]" ] || fail "vm list is not empty"
kill -TERM "$daemon_pid"
rc=0
wait "$daemon_pid" || rc=$?
daemon_pid=""
[ "$rc" = 0 ] || fail "the daemon exited with $rc on SIGTERM"
contains "the daemon's log" "$(cat "$tmp/daemon.log")" "VMs keep running"
phase "daemon served and stopped"

# 4. Upgrade (the same package again): the operator's config edit stays, the modes come back,
# and nothing tells them to enable the service again.
echo "# edited by the operator" >>"$conf"
chmod 0755 /var/lib/limiquantix
upgrade_log="$(dpkg -i "$deb" 2>&1)" || fail "dpkg -i over the installed package failed:"$'\n'"$upgrade_log"
grep -qxF "# edited by the operator" "$conf" || fail "the upgrade lost the config edit"
check_mode /var/lib/limiquantix 750
! grep -qF "systemctl enable" <<<"$upgrade_log" || fail "an upgrade asks to enable the service"

# 5. Remove: programs go, configuration and state stay. Then purge: configuration goes (with
# what the operator added), state stays with a message.
install -D -m 0600 /dev/null /etc/limiquantix/tls/node.key
touch "$keep"
dpkg -r "$pkg" >"$tmp/remove.log" 2>&1 || fail "dpkg -r failed: $(cat "$tmp/remove.log")"
[ "$(field Status)" = "deinstall ok config-files" ] || fail "after remove: $(field Status)"
for f in /usr/bin/limiquantix-node /usr/bin/lqctl /lib/systemd/system/limiquantix-node.service \
    /usr/share/bash-completion/completions/lqctl /usr/lib/tmpfiles.d/limiquantix-node.conf; do
    absent "$f"
done
[ -f "$conf" ] || fail "remove deleted the conffile"
[ -f "$keep" ] || fail "remove deleted /var/lib/limiquantix's contents"
purge_log="$(dpkg -P "$pkg" 2>&1)" || fail "dpkg -P failed: $purge_log"
contains "the purge's output" "$purge_log" "/var/lib/limiquantix is kept"
absent /etc/limiquantix
absent /run/limiquantix
[ -f "$keep" ] || fail "purge deleted /var/lib/limiquantix's contents"
status="$(dpkg-query -W -f '${Status}' "$pkg" 2>/dev/null || true)"
case "$status" in "" | *not-installed) ;; *) fail "after purge: $status" ;; esac

phase "passed"
