#!/usr/bin/env bash
# Installs QEMU's system emulators and UEFI firmware (with their firmware
# descriptors in /usr/share/qemu/firmware) from bookworm-backports, matching
# the preinstalled qemu-utils 10. Idempotent: does nothing when present.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
have() { command -v "$1" >/dev/null 2>&1; }
need=()
have qemu-system-aarch64 || need+=(qemu-system-arm)
have qemu-system-x86_64  || need+=(qemu-system-x86)
have qemu-system-riscv64 || need+=(qemu-system-riscv)
[ -e /usr/share/qemu/firmware/60-edk2-aarch64.json ] || need+=(qemu-efi-aarch64)
[ -e /usr/share/qemu/firmware/60-edk2-x86_64.json ]  || need+=(ovmf)
[ -e /usr/share/seabios/bios-256k.bin ]              || need+=(seabios)
have mdel || need+=(mtools)
# Debian 12 has no EDK2 for riscv64: Debian 13's qemu-efi-riscv64 (the
# firmware files and their descriptor, no dependencies) is installed.
riscv_fw=""; [ -e /usr/share/qemu/firmware/60-edk2-riscv64.json ] || riscv_fw=1
[ ${#need[@]} -gt 0 ] || [ -n "$riscv_fw" ] || exit 0
if [ -n "$riscv_fw" ]; then
  echo "setup: installing qemu-efi-riscv64 from Debian 13 (downloaded with scripts/trixie-apt.sh)" >&2
  d=$(mktemp -d)
  here=$(cd "$(dirname "$0")" && pwd)
  (cd "$d" && "$here/trixie-apt.sh" "${XDG_CACHE_HOME:-$HOME/.cache}/bootproof/trixie-apt" apt-get download -qq qemu-efi-riscv64)
  $SUDO dpkg -i "$d"/qemu-efi-riscv64_*.deb >/dev/null
  rm -rf "$d"
fi
[ ${#need[@]} -gt 0 ] || exit 0
if ! grep -rqs "bookworm-backports" /etc/apt/sources.list /etc/apt/sources.list.d/; then
  echo "deb http://deb.debian.org/debian bookworm-backports main" | $SUDO tee /etc/apt/sources.list.d/bookworm-backports.list >/dev/null
fi
echo "setup: installing ${need[*]} (QEMU from bookworm-backports)" >&2
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends -t bookworm-backports "${need[@]}" >/dev/null
