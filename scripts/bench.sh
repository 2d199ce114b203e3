#!/usr/bin/env bash
# Benchmark: `bootproof inspect` on multi-GiB sparse images (raw, qcow2,
# zstd-compressed qcow2) against what a user would otherwise do.
#
#   scripts/bench.sh [RUNS]      (default 10; needs root for the loop-mount comparison)
#
# All runs are warm-cache (the image's pages are in the host page cache), so
# the figures compare work done, not disk speed.
#
# Inputs are fixed: the Debian arm64 sample image (scripts/build-sample-image.sh)
# grown to 16 GiB with its backup GPT moved to the end. Prints a Markdown
# table (wall time median of RUNS, bytes bootproof read from the image).
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-10}
scripts/build-sample-image.sh target/sample >/dev/null
cargo build --release --locked -q
bp=$PWD/target/release/bootproof
dir=target/bench; mkdir -p "$dir"
raw=$dir/disk16g.raw
if [ ! -f "$raw" ] || [ target/sample/debian-arm64.raw -nt "$raw" ]; then
  cp --sparse=always target/sample/debian-arm64.raw "$raw"
  truncate -s 16G "$raw"
  sgdisk -e "$raw" >/dev/null
  qemu-img convert -O qcow2 "$raw" "$dir/disk16g.qcow2"
  qemu-img convert -O qcow2 -c -o compression_type=zstd "$raw" "$dir/disk16g-zstd.qcow2"
fi

median() { sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
time_ms() { # command... -> median wall ms over $runs runs
  for _ in $(seq "$runs"); do
    s=$(date +%s%N); "$@" >/dev/null 2>&1; e=$(date +%s%N)
    echo $(( (e - s) / 1000000 ))
  done | median
}

echo "| job | image | median wall time | bytes read from image |"
echo "|---|---|---|---|"
for img in "$raw" "$dir/disk16g.qcow2" "$dir/disk16g-zstd.qcow2"; do
  size="16 GiB"; used=$(du -h "$img" | cut -f1)
  ms=$(time_ms "$bp" inspect "$img")
  bytes=$("$bp" inspect --json "$img" | python3 -c 'import json,sys; print(json.load(sys.stdin)["image"]["bytes_read"])')
  echo "| \`bootproof inspect\` | $(basename "$img") ($size virtual, $used on disk) | ${ms} ms | $((bytes / 1024)) KiB |"
  ms=$(time_ms "$bp" cat "$img" /boot/vmlinuz)
  echo "| \`bootproof cat /boot/vmlinuz\` (31 MiB) | $(basename "$img") | ${ms} ms | |"
done

for img in "$raw" "$dir/disk16g-zstd.qcow2"; do
  ms=$(time_ms "$bp" check "$img")
  bytes=$("$bp" check --json "$img" | python3 -c 'import json,sys; print(json.load(sys.stdin)["bytes_read"])')
  echo "| \`bootproof check\` (28 rules, reads kernel + initrd + config) | $(basename "$img") | ${ms} ms | $((bytes / 1024)) KiB |"
  ms=$(time_ms sh -c "rm -rf '$dir/out' && '$bp' extract '$img' -o '$dir/out'")
  echo "| \`bootproof extract\` (new output dir) | $(basename "$img") | ${ms} ms | |"
  ms=$(time_ms "$bp" extract "$img" -o "$dir/out")
  echo "| \`bootproof extract\` (same content already extracted) | $(basename "$img") | ${ms} ms | |"
done

# The alternative without bootproof: attach the partition with a loop device
# at its offset, mount it, look, unmount. (This host's kernel neither scans
# partitions on loop devices nor has vfat, so only the ext4 root is mounted;
# qcow2 would additionally need qemu-nbd and the nbd module.)
if [ "$(id -u)" -eq 0 ] && command -v losetup >/dev/null; then
  start=$(sgdisk -i2 "$raw" | awk '/First sector/ {print $3}')
  loop_job() {
    local mnt; mnt=$(mktemp -d)
    local dev; dev=$(losetup -f --show -r -o $((start * 512)) "$raw")
    mount -o ro "$dev" "$mnt" && ls -lR "$mnt/boot" >/dev/null && cat "$mnt/etc/os-release" >/dev/null
    umount "$mnt"; losetup -d "$dev"; rmdir "$mnt"
  }
  if loop_job 2>/dev/null; then
    ms=$(time_ms loop_job)
    echo "| \`losetup -o\` + \`mount\` + \`ls /boot\` + \`cat os-release\` (root partition only, needs root) | disk16g.raw | ${ms} ms | |"
    cp_job() {
      local mnt; mnt=$(mktemp -d)
      local dev; dev=$(losetup -f --show -r -o $((start * 512)) "$raw")
      mount -o ro "$dev" "$mnt" && cat "$mnt/boot/vmlinuz" >/dev/null
      umount "$mnt"; losetup -d "$dev"; rmdir "$mnt"
    }
    ms=$(time_ms cp_job)
    echo "| loop mount + \`cat /boot/vmlinuz\` (needs root) | disk16g.raw | ${ms} ms | |"
    extract_job() {
      local mnt; mnt=$(mktemp -d)
      local dev; dev=$(losetup -f --show -r -o $((start * 512)) "$raw")
      rm -rf "$dir/cp-out"; mkdir -p "$dir/cp-out"
      mount -o ro "$dev" "$mnt" && cp -L "$mnt/boot/vmlinuz" "$mnt/boot/initrd.img" "$dir/cp-out/" && sync "$dir/cp-out"
      umount "$mnt"; losetup -d "$dev"; rmdir "$mnt"
    }
    ms=$(time_ms extract_job)
    echo "| loop mount + \`cp\` kernel and initrd out (the manual extract; needs root, no boot-config parsing) | disk16g.raw | ${ms} ms | |"
  else
    echo "| loop mount | disk16g.raw | not possible on this host | |"
  fi
fi
if command -v virt-filesystems >/dev/null; then
  ms=$(time_ms virt-filesystems -a "$raw" --all --long)
  echo "| libguestfs \`virt-filesystems --all --long\` | disk16g.raw | ${ms} ms | |"
else
  echo "| libguestfs \`virt-filesystems\` / \`virt-ls\` / \`virt-get-kernel\` | — | not installed here (boots a helper appliance VM per call) | |"
fi
