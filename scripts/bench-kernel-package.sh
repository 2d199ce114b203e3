#!/usr/bin/env bash
# Benchmark: opening a Debian kernel package for `bootproof run --kernel`
# against unpacking it by hand.
#
#   scripts/bench-kernel-package.sh [RUNS]      (default 3)
#
# Fixed input: Debian's bookworm-backports arm64 kernel package
# (tests/artifacts/fetch-backports-kernels.sh). Prints a Markdown table of
# median wall times: bootproof's first open (hash, read the .deb in-process,
# unpack the kernel and module tree into a fresh cache), a later open (hash,
# find the cache), and `dpkg-deb -x` of the whole package, the alternative.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-3}
tests/artifacts/fetch-backports-kernels.sh target/backports-kernels
deb=$PWD/target/backports-kernels/arm64.deb
cargo build --release --locked -q -p bootproof-boot --example open_kernel
open=$PWD/target/release/examples/open_kernel
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
median() { sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
ms() { local s e; s=$(date +%s%N); "$@" >/dev/null; e=$(date +%s%N); echo $(( (e - s) / 1000000 )); }
cold=(); warm=(); dpkg=()
for i in $(seq "$runs"); do
  rm -rf "$tmp/cache" "$tmp/x"; sync
  cold+=("$(ms "$open" "$deb" "$tmp/cache")")
  warm+=("$(ms "$open" "$deb" "$tmp/cache")")
  dpkg+=("$(ms dpkg-deb -x "$deb" "$tmp/x")")
done
m() { printf '%s\n' "$@" | median; }
echo "| $(basename "$(readlink -f "$deb")") ($(du -m "$deb" | cut -f1) MiB) | median of $runs |"
echo "|---|---|"
echo "| bootproof, first open (read .deb, unpack kernel + modules) | $(m "${cold[@]}") ms |"
echo "| bootproof, later opens (hash, cache hit) | $(m "${warm[@]}") ms |"
echo "| dpkg-deb -x (whole package) | $(m "${dpkg[@]}") ms |"
echo
echo "unpacked by bootproof: $(du -sm "$tmp/cache" | cut -f1) MiB; by dpkg-deb: $(du -sm "$tmp/x" | cut -f1) MiB"
