#!/usr/bin/env bash
# Best effort (CI): install debootstrap + qemu-user-static and make sure the arm64 binfmt handler is
# registered, so `make test-aarch64` can run. Never fails: check.py prints why it skips instead.
set -u
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
    echo "setup-aarch64: not root or no apt-get: leaving the host as it is"; exit 0
fi
if ! command -v debootstrap >/dev/null || ! command -v qemu-aarch64-static >/dev/null; then
    echo "setup-aarch64: apt-get install debootstrap qemu-user-static binfmt-support"
    { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q debootstrap qemu-user-static binfmt-support; } \
        >/tmp/edgeflow-setup-aarch64.log 2>&1 || { echo "setup-aarch64: apt-get failed (see /tmp/edgeflow-setup-aarch64.log)"; exit 0; }
fi
if [ ! -e /proc/sys/fs/binfmt_misc/register ]; then
    mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc 2>/dev/null || echo "setup-aarch64: cannot mount binfmt_misc"
fi
if [ -e /proc/sys/fs/binfmt_misc/register ] && [ ! -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ]; then
    update-binfmts --enable qemu-aarch64 2>/dev/null || echo "setup-aarch64: update-binfmts --enable qemu-aarch64 failed"
fi
echo "setup-aarch64: arm64 binfmt handler: $(head -1 /proc/sys/fs/binfmt_misc/qemu-aarch64 2>/dev/null || echo missing)"
exit 0
