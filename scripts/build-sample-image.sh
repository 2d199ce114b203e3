#!/usr/bin/env bash
# Builds bootproof's sample arm64 VM image from real Debian packages.
#
#   scripts/build-sample-image.sh [OUTDIR]     (default: target/sample)
#
# Produces OUTDIR/debian-arm64.raw and OUTDIR/debian-arm64.qcow2 (zstd):
#   GPT, partition 1: EFI System (FAT32) with systemd-boot as
#     \EFI\BOOT\BOOTAA64.EFI, loader.conf, a Boot Loader Spec entry, and the
#     kernel + initrd it names;
#   partition 2: Linux root (ARM64), ext4, with /boot/vmlinuz-<ver>,
#     /boot/config-<ver>, /lib/modules/<ver>, /etc/os-release, busybox.
# The kernel version comes from the linux-image-arm64 metapackage at build
# time (never hard-coded). Idempotent: an existing image for the same kernel
# version is kept. Needs root for apt (it adds the arm64 architecture).
set -euo pipefail
cd "$(dirname "$0")/.."
out=$(realpath -m "${1:-target/sample}")
mkdir -p "$out"

export DEBIAN_FRONTEND=noninteractive
SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
if ! dpkg --print-foreign-architectures | grep -qx arm64; then
  $SUDO dpkg --add-architecture arm64
  $SUDO apt-get update -qq
fi
need=()
for t in sgdisk:gdisk mkfs.vfat:dosfstools mcopy:mtools mkfs.ext4:e2fsprogs qemu-img:qemu-utils cpio:cpio; do
  command -v "${t%%:*}" >/dev/null || need+=("${t#*:}")
done
[ ${#need[@]} -eq 0 ] || { $SUDO apt-get update -qq; $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null; }

kpkg=$(apt-cache depends linux-image-arm64:arm64 | awk '/Depends: linux-image-[0-9]/ {print $2; exit}')
[ -n "$kpkg" ] || { apt-get update -qq; kpkg=$(apt-cache depends linux-image-arm64:arm64 | awk '/Depends: linux-image-[0-9]/ {print $2; exit}'); }
kpkg=${kpkg%:arm64}
kver=${kpkg#linux-image-}
stamp="$out/.built-2-$kver"
if [ -f "$stamp" ] && [ -f "$out/debian-arm64.qcow2" ]; then
  echo "sample image for $kver is up to date: $out/debian-arm64.qcow2" >&2
  exit 0
fi
echo "building sample image with $kpkg" >&2

work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
(cd "$work" && apt-get download -qq -o APT::Sandbox::User=root "$kpkg:arm64" systemd-boot-efi:arm64 busybox-static:arm64 base-files:arm64)
root="$work/root"; mkdir -p "$root"
for deb in "$work"/*.deb; do dpkg-deb -x "$deb" "$work/x"; done
# Root filesystem: the kernel package's /boot and modules, base-files' os-release, busybox.
mkdir -p "$root"/{boot,etc,usr/lib,bin,sbin,dev,proc,sys,lib}
cp -a "$work/x/boot/." "$root/boot/"
cp -a "$work/x/lib/modules" "$root/lib/" 2>/dev/null || cp -a "$work/x/usr/lib/modules" "$root/lib/"
cp -a "$work/x/usr/lib/os-release" "$root/usr/lib/os-release"
ln -s ../usr/lib/os-release "$root/etc/os-release"
cp "$work/x/bin/busybox" "$root/bin/busybox"
ln -s busybox "$root/bin/sh"
echo "bootproof-sample" > "$root/etc/hostname"
printf 'PARTLABEL=root / ext4 defaults 0 1\nPARTLABEL=esp /boot/efi vfat defaults 0 2\n' > "$root/etc/fstab"
# A busybox initramfs whose /init reports and powers off.
ird="$work/initrd"; mkdir -p "$ird"/{bin,proc,sys,dev}
cp "$work/x/bin/busybox" "$ird/bin/busybox"
# The drivers needed to reach the root filesystem on a virtio disk (Debian
# builds them as modules), with what they depend on.
for m in virtio_pci_legacy_dev virtio_pci_modern_dev virtio_pci virtio_blk crc16 mbcache jbd2 ext4 crc32c_generic; do
  f=$(find "$work/x/lib/modules/$kver" -name "$m.ko*" | head -n 1)
  [ -n "$f" ] || continue
  rel=${f#"$work/x/"}
  mkdir -p "$ird/$(dirname "$rel")"
  cp "$f" "$ird/$rel"
done
cat > "$ird/init" <<'INIT'
#!/bin/busybox sh
/bin/busybox mount -t proc proc /proc
/bin/busybox echo "bootproof-sample: init reached on $(/bin/busybox uname -r)"
/bin/busybox poweroff -f
INIT
chmod +x "$ird/init"
(cd "$ird" && find . | cpio -o -H newc --quiet | gzip -9) > "$root/boot/initrd.img-$kver"
ln -s "vmlinuz-$kver" "$root/boot/vmlinuz"
ln -s "initrd.img-$kver" "$root/boot/initrd.img"

# ESP: systemd-boot at the removable path, BLS entry, kernel and initrd.
esp="$work/esp"; mkdir -p "$esp/EFI/BOOT" "$esp/loader/entries" "$esp/debian/$kver"
cp "$work/x/usr/lib/systemd/boot/efi/systemd-bootaa64.efi" "$esp/EFI/BOOT/BOOTAA64.EFI"
printf 'default debian-%s.conf\ntimeout 0\n' "$kver" > "$esp/loader/loader.conf"
cat > "$esp/loader/entries/debian-$kver.conf" <<ENTRY
title   Debian GNU/Linux ($kver)
version $kver
linux   /debian/$kver/vmlinuz
initrd  /debian/$kver/initrd.img
options root=PARTLABEL=root console=ttyAMA0 rdinit=/init
ENTRY
cp "$root/boot/vmlinuz-$kver" "$esp/debian/$kver/vmlinuz"
cp "$root/boot/initrd.img-$kver" "$esp/debian/$kver/initrd.img"

raw="$out/debian-arm64.raw"
rm -f "$raw"; truncate -s 1G "$raw"
sgdisk -n1:2048:+200M -t1:EF00 -c1:esp -n2:0:0 -t2:8305 -c2:root "$raw" >/dev/null
start2=$(sgdisk -i2 "$raw" | awk '/First sector/ {print $3}')
end2=$(sgdisk -i2 "$raw" | awk '/Last sector/ {print $3}')
mkfs.vfat -C -F 32 -n ESP "$work/esp.img" $((200 * 1024)) >/dev/null
mcopy -s -i "$work/esp.img" "$esp"/* ::/
dd if="$work/esp.img" of="$raw" bs=1M seek=1 conv=notrunc,sparse status=none
mkfs.ext4 -q -L root -d "$root" "$work/root.img" "$(( (end2 - start2 + 1) / 2 ))k"
dd if="$work/root.img" of="$raw" bs=512 seek="$start2" conv=notrunc,sparse status=none
qemu-img convert -O qcow2 -c -o compression_type=zstd "$raw" "$out/debian-arm64.qcow2"
rm -f "$out"/.built-*; touch "$stamp"
echo "built $out/debian-arm64.raw and $out/debian-arm64.qcow2 ($kver)" >&2
