#!/usr/bin/env bash
# The main job on a fresh Debian 12 machine: installs what it needs, builds
# bootproof and a sample arm64 VM image from real Debian packages (kernel,
# systemd-boot, busybox), then inspects, browses, checks and extracts the
# image in-process, without root, loop devices or mounts, and boots it under
# QEMU through UEFI firmware and by direct kernel boot, and verifies its
# runtime compliance on every platform variant with bootproof's agent.
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
