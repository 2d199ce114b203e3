#!/usr/bin/env bash
# The main job on a fresh Debian 12 machine: installs what it needs, builds
# bootproof and a sample arm64 VM image from real Debian packages (kernel,
# systemd-boot, busybox), then inspects, browses, checks and extracts the
# image in-process, without root, loop devices or mounts, and boots it under
# QEMU through UEFI firmware and by direct kernel boot, verifies its
# runtime compliance on every platform variant with bootproof's agent, and
# runs a command in it on its own kernel and on Debian's bookworm-backports
# kernel package.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/build-sample-image.sh target/sample
scripts/install-qemu.sh
scripts/build-agent.sh
cargo build --release --locked -q
bp=target/release/bootproof
img=target/sample/debian-arm64.qcow2
entry=$($bp ls "$img" PARTLABEL=esp:/loader/entries | head -n 1)
set -x
$bp inspect "$img"
$bp ls -l "$img" LABEL=ESP:/EFI/BOOT
$bp cat "$img" "PARTLABEL=esp:/loader/entries/$entry"
$bp cat "$img" /etc/os-release
$bp ls -l "$img" 2:/boot
$bp check "$img"
$bp extract "$img" -o target/sample/extracted
$bp boot "$img"
$bp boot --mode direct "$img"
$bp verify "$img"
$bp run --variants acpi=on,off gic=3 transport=pci "$img" -- sh -c 'uname -a; if test -d /sys/firmware/acpi/tables; then echo "described by ACPI"; else echo "described by a device tree"; fi'
# The same userland on two kernels: the image's own and the backports
# kernel package, as apt downloads it (bootproof reads the .deb itself).
tests/artifacts/fetch-backports-kernels.sh target/backports-kernels
$bp run --kernel target/backports-kernels/arm64.deb --variants gic=3 acpi=on transport=pci "$img" -- \
  sh -c 'uname -r; if test -e /proc/sys/kernel/io_uring_disabled; then echo "io_uring can be switched off (Linux 6.6+)"; else echo "no io_uring_disabled sysctl"; exit 1; fi' || [ $? -eq 1 ]   # 1: the 6.1 cell fails, as it should
