#!/usr/bin/env bash
# Fetches and unpacks Debian 13 (trixie) riscv64 boot artifacts for the
# riscv64 tests: linux-image-<ver>-riscv64 (resolved from the metapackage),
# grub-efi-riscv64-bin, systemd-boot-efi and busybox-static, and the
# trixie-backports kernel as a second kernel (kept as .debs in
# OUTDIR/backports/ for `run --kernel`: linux-binary-* and linux-modules-*,
# which Debian's 7.x linux-image-* only depends on). Trixie is used
# for downloads only, through an apt configuration of its own under OUTDIR
# (the host stays Debian 12).
#
#   tests/artifacts/fetch-riscv64-artifacts.sh OUTDIR
#
# OUTDIR/root holds the unpacked packages; OUTDIR/manifest names the
# resolved kernel packages. Idempotent per resolved kernels.
set -euo pipefail
out=$(realpath -m "$1")
here=$(cd "$(dirname "$0")" && pwd)
apt() { "$here/../../scripts/trixie-apt.sh" "$out.apt" "$@"; }
kpkg=$(apt apt-cache depends linux-image-riscv64 | awk '/Depends: linux-image-[0-9]/ {print $2; exit}')
bpkg=$(apt apt-cache depends linux-image-riscv64/trixie-backports | awk '/Depends: linux-image-[0-9]/ {print $2; exit}')
{ [ -n "$kpkg" ] && [ -n "$bpkg" ]; } || { echo "fetch-riscv64-artifacts: cannot resolve linux-image-riscv64 in trixie and trixie-backports" >&2; exit 1; }
if [ -f "$out/manifest" ] && [ "$(head -n1 "$out/manifest")" = "$kpkg $bpkg" ]; then
  exit 0
fi
rm -rf "$out"; mkdir -p "$out/debs" "$out/root" "$out/backports"
(cd "$out/debs" && apt apt-get download -qq "$kpkg" grub-efi-riscv64-bin systemd-boot-efi busybox-static)
for deb in "$out"/debs/*.deb; do dpkg-deb -x "$deb" "$out/root"; done
rm -rf "$out/debs"
# The metapackage's kernel, else (a mirror behind its index) the newest
# other backports kernel that downloads.
got=""
for p in "$bpkg" $(apt apt-cache search --names-only '^linux-image-[0-9].*-riscv64$' | awk '{print $1}' \
                 | grep -vx "$kpkg" | sort -rV | head -n4); do
  # Debian's 7.x packaging splits the kernel (linux-binary-*) and its
  # modules (linux-modules-*) out of linux-image-*, which only depends on them.
  parts=$(apt apt-cache depends "$p" | awk '/Depends: linux-(binary|modules)-[0-9]/ {print $2}' | sed 's/:.*//')
  if (cd "$out/backports" && apt apt-get download -qq ${parts:-$p} 2>/dev/null); then got=$p; break; fi
  rm -f "$out"/backports/*.deb
done
[ -n "$got" ] || { echo "fetch-riscv64-artifacts: no trixie-backports riscv64 kernel downloads" >&2; exit 1; }
printf '%s\n' "$kpkg $bpkg" > "$out/manifest"
