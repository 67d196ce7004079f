#!/usr/bin/env bash
# Build (once) and cache a Debian bookworm arm64 root: the base of Raspberry Pi OS bookworm
# (Python 3.11, NumPy 1.24, OpenCV 4.6), run through qemu-user-static's binfmt handler.
#
# Only the bare OS is built here (python3, sudo, ca-certificates): the packages docs/deploy_pi.md
# tells a user to apt-install are installed by the check itself, by running the page's lines.
# The root is cached in $EF_AARCH64_CACHE (default /var/cache/edgeflow-aarch64) and reused while
# .edgeflow-root-ok says it is complete; a half-built root.tmp (interrupted build) is ours and is
# rebuilt from scratch.
set -euo pipefail
CACHE=${EF_AARCH64_CACHE:-/var/cache/edgeflow-aarch64}
MIRROR=${EF_DEBIAN_MIRROR:-http://deb.debian.org/debian}
ROOT="$CACHE/root"

if [ -f "$ROOT/.edgeflow-root-ok" ]; then
    echo "aarch64 root: cached at $ROOT"
    exit 0
fi
command -v debootstrap >/dev/null || { echo "aarch64 root: debootstrap is missing: apt-get install debootstrap qemu-user-static binfmt-support" >&2; exit 2; }
mkdir -p "$CACHE"
if [ -e "$CACHE/root.tmp" ]; then
    [ -f "$CACHE/root.tmp/.edgeflow-build" ] || { echo "aarch64 root: $CACHE/root.tmp exists and was not made by this script; remove it" >&2; exit 2; }
    rm -rf "$CACHE/root.tmp"
fi
mkdir -p "$CACHE/root.tmp" && touch "$CACHE/root.tmp/.edgeflow-build"
echo "aarch64 root: debootstrap bookworm arm64 into $CACHE/root.tmp (log: $CACHE/debootstrap.log; ~10-20 min under QEMU)"
start=$(date +%s)
debootstrap --arch=arm64 --variant=minbase --include=python3,sudo,ca-certificates \
    bookworm "$CACHE/root.tmp" "$MIRROR" >"$CACHE/debootstrap.log" 2>&1 \
    || { tail -20 "$CACHE/debootstrap.log" >&2; echo "aarch64 root: debootstrap failed (log above)" >&2; exit 1; }
printf 'deb %s bookworm main\ndeb %s bookworm-updates main\ndeb http://deb.debian.org/debian-security bookworm-security main\n' \
    "$MIRROR" "$MIRROR" >"$CACHE/root.tmp/etc/apt/sources.list"
rm -f "$CACHE/root.tmp/.edgeflow-build"
touch "$CACHE/root.tmp/.edgeflow-root-ok"
mv "$CACHE/root.tmp" "$ROOT"
echo "aarch64 root: built in $(( $(date +%s) - start )) s"
