#!/usr/bin/env bash
# Downloads Debian's bookworm-backports kernel packages (arm64 and amd64),
# a newer kernel line than bookworm's own, for `bootproof run --kernel`
# tests. The .deb files are kept as they are: bootproof reads them itself.
#
#   tests/artifacts/fetch-backports-kernels.sh OUTDIR
#
# OUTDIR/<arch>.deb are the packages (resolved from the linux-image-<arch>
# metapackage's backports version; versions move with updates, so none is
# hard-coded); OUTDIR/manifest lists the resolved names. Idempotent per
# resolved package set.
set -euo pipefail
out=$(realpath -m "$1")
export DEBIAN_FRONTEND=noninteractive
SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
if ! grep -rqs "bookworm-backports" /etc/apt/sources.list /etc/apt/sources.list.d/; then
  echo "deb http://deb.debian.org/debian bookworm-backports main" | $SUDO tee /etc/apt/sources.list.d/bookworm-backports.list >/dev/null
  $SUDO apt-get update -qq
fi
if ! dpkg --print-foreign-architectures | grep -qx arm64; then
  $SUDO dpkg --add-architecture arm64
  $SUDO apt-get update -qq
fi
resolve() {
  apt-cache -t bookworm-backports depends "linux-image-$1:$1" 2>/dev/null \
    | awk '/Depends: linux-image-[0-9]/ {print $2; exit}' | sed 's/:.*//'
}
k_arm64=$(resolve arm64); k_amd64=$(resolve amd64)
case "$k_arm64 $k_amd64" in *bpo*|*+deb12*) ;; *)
  $SUDO apt-get update -qq
  k_arm64=$(resolve arm64); k_amd64=$(resolve amd64) ;;
esac
if [ -z "$k_arm64" ] || [ -z "$k_amd64" ]; then
  echo "fetch-backports-kernels: no linux-image-arm64/amd64 in bookworm-backports" >&2
  exit 1
fi
want="$k_arm64 $k_amd64"
if [ -f "$out/manifest" ] && [ "$(head -n1 "$out/manifest")" = "$want" ]; then
  exit 0
fi
rm -rf "$out"; mkdir -p "$out/dl"
(cd "$out/dl" && apt-get download -qq -o APT::Sandbox::User=root -t bookworm-backports "$k_arm64:arm64" "$k_amd64:amd64")
mv "$out"/dl/*_arm64.deb "$out/arm64.deb"
mv "$out"/dl/*_amd64.deb "$out/amd64.deb"
rmdir "$out/dl"
printf '%s\n' "$want" > "$out/manifest"
