#!/usr/bin/env bash
# Installs the host tools bpfgate needs, from the machine's own Debian package sources:
# QEMU for both arches (guests run under TCG when KVM cannot boot them), clang/llvm with
# the bpf target and libbpf headers for the guest's probe objects, lld and systemtap's
# <sys/sdt.h> (systemtap-sdt-dev) for the guest's USDT program, busybox-static, cpio,
# Chromium for the HTML table's browser test, and containerd with runc for the
# cri-socket-stale repro (bpfgate starts its own containerd in a private mount namespace;
# the package's service is never started or used). util-linux (unshare, nsenter) is
# essential on Debian. Kernels and guest packages are fetched later by bpfgate itself
# through its private apt configuration.
set -euo pipefail
PACKAGES=(qemu-system-x86 qemu-system-arm clang llvm lld libbpf-dev systemtap-sdt-dev linux-libc-dev busybox-static
  cpio file xz-utils zstd binutils ca-certificates chromium containerd runc
  kmod openssl)
missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "setup-host: all host packages present"
  exit 0
fi
SUDO=; [ "$(id -u)" -eq 0 ] || SUDO=sudo
echo "setup-host: installing ${missing[*]}"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
