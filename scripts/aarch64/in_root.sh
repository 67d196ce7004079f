#!/usr/bin/env bash
# Run a command inside the cached arm64 root: usage  in_root.sh ROOT CPUINFO CMD...
#
# A private mount namespace (unshare --mount) holds /proc, /sys, /dev and the fake cpuinfo, so
# every mount disappears with the command, even when it is killed: nothing is left mounted in the
# cached root. CPUINFO is bind-mounted over /proc/cpuinfo because QEMU 7.2 user mode passes the
# host's x86 /proc/cpuinfo through, and onnxruntime's CPU detection (pytorch/cpuinfo) cannot parse
# it on arm64 and crashes.
set -euo pipefail
ROOT=$1 CPUINFO=$2
shift 2
cp /etc/resolv.conf "$ROOT/etc/resolv.conf"  # pip and apt in the root need DNS
grep -qw "$(hostname)" "$ROOT/etc/hosts" 2>/dev/null || echo "127.0.1.1 $(hostname)" >>"$ROOT/etc/hosts"  # sudo looks it up
exec unshare --mount --propagation private -- /bin/bash -c '
set -e
root=$1 cpuinfo=$2
shift 2
mount -t proc proc "$root/proc"
mount --bind "$cpuinfo" "$root/proc/cpuinfo"
mount -t sysfs sysfs "$root/sys" 2>/dev/null || mount --rbind /sys "$root/sys"
mount --bind /dev "$root/dev"
mount -t tmpfs tmpfs "$root/dev/shm"
mount -t devpts devpts "$root/dev/pts" -o newinstance 2>/dev/null || true
# The host'"'"'s TLS trust store (e.g. a CI egress proxy'"'"'s CA), so pip in the root reaches PyPI as the host does.
if [ -f /etc/ssl/certs/ca-certificates.crt ] && [ -f "$root/etc/ssl/certs/ca-certificates.crt" ]; then
    mount --bind /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/ca-certificates.crt"
fi
exec chroot "$root" /usr/bin/env -i HOME=/root USER=root LANG=C.UTF-8 TERM=dumb \
    PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin "$@"
' in_root "$ROOT" "$CPUINFO" "$@"
