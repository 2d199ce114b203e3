#!/usr/bin/env bash
# bootproof against the tools a user would otherwise reach for, on the same
# images in one run, pairwise: libguestfs's virt-inspector (inspect),
# virt-get-kernel (extract) and virt-ls (ls). Prints a Markdown table: the
# median wall time and the peak RSS of each (GNU time's maxrss: the largest
# of the process and the children it waited for, so libguestfs's QEMU
# appliance counts), and bootproof's speed-up and memory ratio.
#
#   scripts/bench-peers.sh [RUNS] [IMAGE...]
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
if [ -z "${LIBGUESTFS_BACKEND_SETTINGS:-}" ] && ! kvm_runs; then
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
print(f"| {job} | {img} | {label}: {ps:.2f} s, {pk // 1024} MiB | bootproof: {bs * 1000:.0f} ms, {bk // 1024} MiB "
      f"| {ps / max(bs, 0.001):.0f}× faster, {pk / max(bk, 1):.0f}× less memory |")
EOF
}

echo "| job | image | peer | bootproof | ratio |"
echo "|---|---|---|---|---|"
for img in "${images[@]}"; do
  row "inspect (OS, filesystems)" "$img" "virt-inspector" virt-inspector -a "$img" -- "$bp" inspect --json "$img"
  row "extract the boot kernel" "$img" "virt-get-kernel" virt-get-kernel -a "$img" -o "$dir/out" -- "$bp" extract "$img" -o "$dir/out"
  row "list /boot" "$img" "virt-ls -l" virt-ls -l -a "$img" /boot -- "$bp" ls -l "$img" /boot
done
echo
echo "$runs runs each, median wall time and the largest peak RSS; $(nproc) cores, libguestfs backend ${LIBGUESTFS_BACKEND}${LIBGUESTFS_BACKEND_SETTINGS:+ (${LIBGUESTFS_BACKEND_SETTINGS})}."
