#!/usr/bin/env bash
# Installs everything the test suite needs on a fresh Debian 12 machine.
# Idempotent: each step checks first and does nothing when already satisfied.
set -euo pipefail

need_apt=()
have() { command -v "$1" >/dev/null 2>&1; }

# Independent, real tools that build the test images (the oracles).
have sgdisk      || need_apt+=(gdisk)
have sfdisk      || need_apt+=(fdisk)
have mkfs.vfat   || need_apt+=(dosfstools)
have mcopy       || need_apt+=(mtools)
have mkfs.ext4   || need_apt+=(e2fsprogs)
have mkfs.xfs    || need_apt+=(xfsprogs)
have mkfs.btrfs  || need_apt+=(btrfs-progs)
have xorriso     || need_apt+=(xorriso)
have qemu-img    || need_apt+=(qemu-utils)
have python3     || need_apt+=(python3)

if [ ${#need_apt[@]} -gt 0 ]; then
  echo "setup: installing ${need_apt[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi

# Rust components the suite uses (clippy/rustfmt for lint gates).
if have rustup; then
  rustup component list --installed 2>/dev/null | grep -q '^clippy' || rustup component add clippy
  rustup component list --installed 2>/dev/null | grep -q '^rustfmt' || rustup component add rustfmt
fi
echo "setup: test dependencies present" >&2
