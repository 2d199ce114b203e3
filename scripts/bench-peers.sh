#!/usr/bin/env bash
# bootproof against the tools a user would otherwise reach for, on the same
# images in one run, pairwise: libguestfs's virt-inspector (inspect and
# check), virt-get-kernel (extract) and virt-ls (ls); a loop mount and cp
# (extract, as root); and a plain QEMU command line with the same firmware
# (boot to the login prompt). Prints a Markdown table: the median wall time
# and the peak RSS of each (GNU time's maxrss: the largest of the process
# and the children it waited for, so libguestfs's QEMU appliance counts),
# and bootproof's speed-up and memory ratio.
#
#   scripts/bench-peers.sh [RUNS] [IMAGE...]
#
# Boots run BOOT_RUNS times (default 1: minutes each under TCG; 0 skips
# them). The boot
# rows cover the x86_64 cloud image as built, and a copy whose cloud-init
# searches for a datasource (ds-identify's aarch64 default, notfound=enabled,
# set in /etc/cloud/ds-identify.cfg), where `bootproof boot` attaches an
# empty NoCloud seed and plain QEMU waits on the metadata services.
#
# RUNS defaults to 3 (libguestfs takes ~20 s per run under TCG). IMAGE
# defaults to the Debian 12 cloud image tests/images/make-cloud-image.sh
# builds from Debian's packages (systemd, cloud-init, the distro kernel
# and initramfs, GRUB; built when missing, ~2 min): libguestfs's
# inspection needs a whole distribution (it reads dpkg's database and
# fails on the test suite's busybox roots). Installs
# libguestfs-tools when missing. Where KVM does not work (as on this
# project's build machine), libguestfs is told to use TCG, as bootproof
# needs nothing of the kind: the figures then show libguestfs at its slowest.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-3}
shift || true
if ! command -v virt-inspector >/dev/null; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q libguestfs-tools >/dev/null
fi
export LIBGUESTFS_BACKEND=direct
# Whether KVM runs an ordinary guest, decided as bootproof's own probe
# does (crates/vm/src/accel.rs): OVMF must reach its boot manager under
# -accel kvm -cpu host. A /dev/kvm that opens but stops such guests (some
# nested setups run SeaBIOS, then fail OVMF's or Linux's first FPU use)
# would hang libguestfs's appliance.
kvm_runs() {
  [ -w /dev/kvm ] && [ -f /usr/share/ovmf/OVMF.fd ] || return 1
  timeout 30 qemu-system-x86_64 -accel kvm -cpu host -nodefaults -no-user-config -display none \
    -monitor none -machine q35 -serial stdio -bios /usr/share/ovmf/OVMF.fd 2>/dev/null |
    grep -a -q -m1 BdsDxe
}
export QEMU_ACCEL="-accel tcg"
if kvm_runs; then
  QEMU_ACCEL="-accel kvm -cpu host"
elif [ -z "${LIBGUESTFS_BACKEND_SETTINGS:-}" ]; then
  export LIBGUESTFS_BACKEND_SETTINGS=force_tcg
fi
cargo build --release --locked -q -p bootproof
bp=$PWD/target/release/bootproof
images=("$@")
if [ ${#images[@]} -eq 0 ]; then
  tests/images/make-cloud-image.sh amd64 target/cloud-images/debian-amd64.raw >/dev/null
  images=(target/cloud-images/debian-amd64.raw)
fi
dir=$(mktemp -d); trap 'rm -rf "$dir"' EXIT
# The first libguestfs run builds its appliance (minutes): not measured.
virt-ls -a "${images[0]}" / >/dev/null 2>&1 || true

# measure CMD... -> "median_seconds peak_kib" over $runs runs (wall time
# from the clock in nanoseconds: bootproof's runs take milliseconds)
measure() {
  for _ in $(seq "$runs"); do
    rm -rf "$dir/out"; mkdir -p "$dir/out"
    s=$(date +%s%N)
    /usr/bin/time -f '%M' -o "$dir/t" "$@" >/dev/null 2>&1 || { echo "failed: $*" >&2; }
    e=$(date +%s%N)
    echo "$(( (e - s) / 1000 )) $(tail -1 "$dir/t")"
  done | sort -n | awk '{s[NR]=$1; if ($2>m) m=$2} END {printf "%.3f %d\n", s[int((NR+1)/2)] / 1e6, m}'
}
row() { # job image peer-label peer-cmd... -- bootproof-cmd...
  local job=$1 img=$2 label=$3; shift 3
  local peer=() ours=()
  while [ "$1" != "--" ]; do peer+=("$1"); shift; done; shift
  ours=("$@")
  read -r ps pk < <(measure "${peer[@]}")
  read -r bs bk < <(measure "${ours[@]}")
  python3 - "$job" "$(basename "$img")" "$label" "$ps" "$pk" "$bs" "$bk" <<'EOF'
import sys
job, img, label, ps, pk, bs, bk = sys.argv[1:]
ps, pk, bs, bk = float(ps), int(pk), float(bs), int(bk)
def ratio(peer, ours, more, less):
    r = peer / max(ours, 1e-3)
    if r >= 10: return f"{r:.0f}× {more}"
    if r >= 1: return f"{r:.1f}× {more}"
    return f"{1 / r:.1f}× {less}"
secs = lambda s: f"{s * 1000:.0f} ms" if s < 1 else f"{s:.1f} s"
print(f"| {job} | {img} | {label}: {secs(ps)}, {pk // 1024} MiB | bootproof: {secs(bs)}, {bk // 1024} MiB "
      f"| {ratio(ps, bs, 'faster', 'slower')}, {ratio(pk, bk, 'less memory', 'more memory')} |")
EOF
}

# The root filesystem's partition (the one holding /boot) mounted read-only
# through a loop device, its kernel and initrd copied: what a user with
# root does by hand.
cat > "$dir/mount-cp" <<'SH'
#!/bin/sh
set -e
img=$1 out=$2 m=$(mktemp -d)
start=$(sgdisk -i2 "$img" | awk '/First sector/{print $3}')
mount -o ro,loop,offset=$((start * 512)) "$img" "$m"
cp "$m"/boot/vmlinuz-* "$m"/boot/initrd.img-* "$out"/
umount "$m"; rmdir "$m"
SH
chmod +x "$dir/mount-cp"
can_mount() { [ "$(id -u)" -eq 0 ] && command -v sgdisk >/dev/null; }

# Plain QEMU to the login prompt: the firmware bootproof picks (the
# descriptor's OVMF), -snapshot for the disk, the serial console read until
# "login:".
cat > "$dir/qemu-login" <<'SH'
#!/bin/bash
img=$1 vars=$(mktemp)
cp /usr/share/OVMF/OVMF_VARS_4M.fd "$vars"
# shellcheck disable=SC2086
coproc Q { exec qemu-system-x86_64 $QEMU_ACCEL -machine q35 -m 1024 -smp 2 -nodefaults -display none \
  -drive if=pflash,format=raw,readonly=on,file=/usr/share/OVMF/OVMF_CODE_4M.fd \
  -drive if=pflash,format=raw,file="$vars" -snapshot \
  -drive file="$img",format=raw,if=virtio -serial stdio 2>/dev/null; }
# The prompt ends without a newline: read up to each colon, not by line.
timeout 900 bash -c 'while IFS= read -r -d : chunk; do
  case $chunk in *login) exit 0 ;; esac
done; exit 1' <&"${Q[0]}"; rc=$?
kill "$Q_PID" 2>/dev/null; wait "$Q_PID" 2>/dev/null; rm -f "$vars"
exit $rc
SH
chmod +x "$dir/qemu-login"

echo "| job | image | peer | bootproof | ratio |"
echo "|---|---|---|---|---|"
for img in "${images[@]}"; do
  row "inspect (OS, filesystems)" "$img" "virt-inspector" virt-inspector -a "$img" -- "$bp" inspect --json "$img"
  row "check (rules, boot prediction)" "$img" "virt-inspector" virt-inspector -a "$img" -- "$bp" check --json "$img"
  row "extract the boot kernel" "$img" "virt-get-kernel" virt-get-kernel -a "$img" -o "$dir/out" -- "$bp" extract "$img" -o "$dir/out"
  if can_mount; then
    row "extract the boot kernel" "$img" "mount -o loop + cp" "$dir/mount-cp" "$img" "$dir/out" -- "$bp" extract "$img" -o "$dir/out"
  fi
  row "list /boot" "$img" "virt-ls -l" virt-ls -l -a "$img" /boot -- "$bp" ls -l "$img" /boot
done
# Boots: the x86_64 cloud image as built, then the copy whose cloud-init searches.
boot_imgs=()
for img in "${images[@]}"; do
  [ "$(basename "$img")" = debian-amd64.raw ] && boot_imgs+=("$img")
done
if [ ${#boot_imgs[@]} -gt 0 ] && command -v debugfs >/dev/null; then
  s="$dir/debian-amd64-searching.raw"
  cp --sparse=always "${boot_imgs[0]}" "$s"
  start=$(sgdisk -i2 "$s" | awk '/First sector/{print $3}')
  dd if="$s" of="$dir/root.ext4" bs=512 skip="$start" conv=sparse status=none
  echo 'policy: search,found=all,maybe=none,notfound=enabled' > "$dir/dsi.cfg"
  debugfs -w -R "write $dir/dsi.cfg /etc/cloud/ds-identify.cfg" "$dir/root.ext4" >/dev/null 2>&1
  dd if="$dir/root.ext4" of="$s" bs=512 seek="$start" conv=sparse,notrunc status=none
  rm -f "$dir/root.ext4"
  boot_imgs+=("$s")
fi
saved=$runs; runs=${BOOT_RUNS:-1}
[ "$runs" -gt 0 ] || boot_imgs=()
for img in "${boot_imgs[@]}"; do
  row "boot to the login prompt" "$img" "plain QEMU + OVMF" "$dir/qemu-login" "$img" -- "$bp" boot --until login --timeout 900 "$img"
done
runs=$saved
echo
echo "$runs runs each (boots: ${BOOT_RUNS:-1}), median wall time and the largest peak RSS; $(nproc) cores, libguestfs backend ${LIBGUESTFS_BACKEND}${LIBGUESTFS_BACKEND_SETTINGS:+ (${LIBGUESTFS_BACKEND_SETTINGS})}."
