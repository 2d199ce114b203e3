#!/usr/bin/env bash
# Fetches and unpacks the real Debian boot artifacts bootproof's boot-stage
# tests use (arm64 and amd64):
#   linux-image-<ver>-{arm64,amd64} (resolved from the metapackages),
#   systemd-boot-efi, grub-efi-*-bin, grub-efi-*-signed and shim-signed
#   (where available), busybox-static.
#
#   tests/artifacts/fetch-debian-artifacts.sh OUTDIR
#
# OUTDIR/<arch>/root holds the unpacked packages; OUTDIR/manifest lists the
# resolved package names. Idempotent per resolved package set.
set -euo pipefail
out=$(realpath -m "$1")
export DEBIAN_FRONTEND=noninteractive
SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
if ! dpkg --print-foreign-architectures | grep -qx arm64; then
  $SUDO dpkg --add-architecture arm64
  $SUDO apt-get update -qq
fi
resolve() { apt-cache depends "linux-image-$1:$1" 2>/dev/null | awk '/Depends: linux-image-[0-9]/ {print $2; exit}' | sed 's/:.*//'; }
k_arm64=$(resolve arm64); k_amd64=$(resolve amd64)
if [ -z "$k_arm64" ] || [ -z "$k_amd64" ]; then
  $SUDO apt-get update -qq
  k_arm64=$(resolve arm64); k_amd64=$(resolve amd64)
fi
# The package set's revision, then the kernels: either changing refetches.
want="2 $k_arm64 $k_amd64"
if [ -f "$out/manifest" ] && [ "$(head -n1 "$out/manifest")" = "$want" ]; then
  exit 0
fi
rm -rf "$out"; mkdir -p "$out"
for arch in arm64 amd64; do
  kpkg=$k_arm64; grub=grub-efi-arm64-bin; shim=shim-signed
  [ "$arch" = amd64 ] && { kpkg=$k_amd64; grub=grub-efi-amd64-bin; }
  d="$out/$arch"; mkdir -p "$d/debs" "$d/root"
  pkgs=("$kpkg:$arch" "systemd-boot-efi:$arch" "$grub:$arch" "busybox-static:$arch")
  apt-cache show "$shim:$arch" >/dev/null 2>&1 && pkgs+=("$shim:$arch")
  apt-cache show "${grub%-bin}-signed:$arch" >/dev/null 2>&1 && pkgs+=("${grub%-bin}-signed:$arch")
  (cd "$d/debs" && apt-get download -qq -o APT::Sandbox::User=root "${pkgs[@]}")
  for deb in "$d"/debs/*.deb; do dpkg-deb -x "$deb" "$d/root"; done
  rm -rf "$d/debs"
done
printf '%s\n' "$want" > "$out/manifest"
