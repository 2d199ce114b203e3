#!/usr/bin/env bash
# Builds a real Debian 12 cloud image for bootproof's full-mode tests:
# an mmdebstrap root (minbase + systemd, udev, cloud-init, ifupdown, the
# distro kernel and its initramfs, zstd-compressed as on Debian's own
# cloud images: without the zstd tool initramfs-tools falls back to gzip)
# on a GPT disk with an ESP holding GRUB at the removable path
# (grub-mkstandalone from the root's own grub-efi-*-bin) and an ext4 root
# (mkfs.ext4 -d). Nothing is mounted.
#
#   tests/images/make-cloud-image.sh ARCH OUT.raw      ARCH: amd64 | arm64
#
# amd64 on an amd64 host takes ~2 minutes (native). arm64 runs every
# maintainer script through qemu-user-static (30+ minutes, mostly
# mkinitramfs): the opt-in test builds it, the default suite does not.
# Idempotent: OUT.raw.stamp records the recipe version.
set -euo pipefail
VERSION=3
arch=$1; out=$(realpath -m "$2")
[ "$(cat "$out.stamp" 2>/dev/null)" = "$VERSION $arch" ] && [ -f "$out" ] && exit 0
case $arch in
  amd64) efi=x64; grubdir=x86_64-efi; console=ttyS0 ;;
  arm64) efi=aa64; grubdir=arm64-efi; console=ttyAMA0 ;;
  *) echo "make-cloud-image: ARCH is amd64 or arm64" >&2; exit 2 ;;
esac
SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
need=()
command -v mmdebstrap >/dev/null || need+=(mmdebstrap)
if [ "$arch" != "$(dpkg --print-architecture)" ]; then
  command -v qemu-aarch64-static >/dev/null || need+=(qemu-user-static binfmt-support)
fi
if [ ${#need[@]} -gt 0 ]; then
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
if [ "$arch" != "$(dpkg --print-architecture)" ]; then
  [ -e /proc/sys/fs/binfmt_misc/register ] || $SUDO mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
  $SUDO update-binfmts --enable qemu-aarch64 >/dev/null 2>&1 || true
fi

ROOT_UUID=3d6a1f0e-8c55-4b7e-9a21-5f4c2b8d9e10
work="$out.work"; rm -rf "$work"; mkdir -p "$work"
trap 'rm -rf "$work"' EXIT
root="$work/root"
# No docs, man pages or translations (a customize hook: dpkg path-exclude
# patterns break packages that create directories under them).
mmdebstrap --quiet --variant=minbase --arch="$arch" \
  --customize-hook='rm -rf "$1"/usr/share/doc/* "$1"/usr/share/man/* "$1"/usr/share/locale/* "$1"/var/cache/apt/*.bin' \
  --include="systemd-sysv,udev,cloud-init,ifupdown,linux-image-$arch,initramfs-tools,zstd,grub-efi-$arch-bin" \
  bookworm "$root" \
  "deb http://deb.debian.org/debian bookworm main" \
  "deb http://deb.debian.org/debian bookworm-updates main" \
  "deb http://deb.debian.org/debian-security bookworm-security main"

ver=$(basename "$(ls "$root"/boot/vmlinuz-* | sort -V | tail -n1)"); ver=${ver#vmlinuz-}
echo "UUID=$ROOT_UUID / ext4 errors=remount-ro 0 1" > "$root/etc/fstab"
echo bootproof-cloud > "$root/etc/hostname"
mkdir -p "$root/boot/grub"
cat > "$root/boot/grub/grub.cfg" <<EOF
set default=0
set timeout=0
menuentry 'Debian GNU/Linux, with Linux $ver' {
	search --no-floppy --fs-uuid --set=root $ROOT_UUID
	linux /boot/vmlinuz-$ver root=UUID=$ROOT_UUID ro console=$console
	initrd /boot/initrd.img-$ver
}
EOF

# ESP: GRUB at the removable path; its embedded config finds the root and
# reads /boot/grub/grub.cfg there (the layout grub-install produces).
mkdir -p "$work/esp/EFI/BOOT"
printf 'search.fs_uuid %s root\nset prefix=($root)/boot/grub\nconfigfile $prefix/grub.cfg\n' "$ROOT_UUID" > "$work/memdisk.cfg"
grub-mkstandalone -O "$grubdir" -d "$root/usr/lib/grub/$grubdir" \
  --modules="part_gpt fat ext2 search configfile normal linux" \
  --install-modules="part_gpt fat ext2 search search_fs_uuid configfile normal linux echo test" \
  --locales= --themes= --fonts= \
  -o "$work/esp/EFI/BOOT/BOOT${efi^^}.EFI" "boot/grub/grub.cfg=$work/memdisk.cfg"

esp_mib=64
root_mib=$(( $(du -sm "$root" | cut -f1) * 5 / 4 + 200 ))
mkfs.vfat -C -F 32 -n ESP "$work/esp.img" $((esp_mib * 1024)) >/dev/null
mcopy -s -i "$work/esp.img" "$work/esp/EFI" ::/
mkfs.ext4 -q -L root -U "$ROOT_UUID" -d "$root" "$work/root.img" "${root_mib}M"
rm -f "$out"
truncate -s $(( (esp_mib + root_mib + 2) * 1024 * 1024 )) "$out"
sgdisk -n1:2048:+${esp_mib}M -t1:EF00 -c1:esp -n2:0:0 -t2:8305 -c2:root "$out" >/dev/null
[ "$arch" = amd64 ] && sgdisk -t2:8304 "$out" >/dev/null
start2=$(( 2048 + esp_mib * 2048 ))
dd if="$work/esp.img" of="$out" bs=1M seek=$((2048 * 512)) oflag=seek_bytes conv=notrunc,sparse status=none
dd if="$work/root.img" of="$out" bs=1M seek=$((start2 * 512)) oflag=seek_bytes conv=notrunc,sparse status=none
echo "$VERSION $arch" > "$out.stamp"
echo "make-cloud-image: $out (Linux $ver, $(du -h "$out" | cut -f1) allocated)" >&2
