#!/usr/bin/env bash
# Installs everything the test suite needs on a fresh Debian 12 machine.
# Idempotent: each step checks first and does nothing when satisfied.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
have() { command -v "$1" >/dev/null 2>&1; }
updated=""
apt_update() { [ -n "$updated" ] || { $SUDO apt-get update -qq; updated=1; }; }

# bookworm-backports: newer btrfs-progs (mkfs.btrfs --compress/--subvol),
# and the QEMU that matches the preinstalled qemu-utils 10.
if ! grep -rqs "bookworm-backports" /etc/apt/sources.list /etc/apt/sources.list.d/; then
  echo "deb http://deb.debian.org/debian bookworm-backports main" | $SUDO tee /etc/apt/sources.list.d/bookworm-backports.list >/dev/null
  updated=""
fi

# Independent, real tools that build the test images (the oracles).
need=()
have sgdisk     || need+=(gdisk)
have sfdisk     || need+=(fdisk)
have mkfs.vfat  || need+=(dosfstools)
have mcopy      || need+=(mtools)
have mkfs.ext4  || need+=(e2fsprogs)
have debugfs    || need+=(e2fsprogs)
have mkfs.xfs   || need+=(xfsprogs)
have xorriso    || need+=(xorriso)
have qemu-img   || need+=(qemu-utils)
have qemu-io    || need+=(qemu-utils)
have python3    || need+=(python3)
python3 -c 'import jsonschema' 2>/dev/null || need+=(python3-jsonschema)  # the independent validator of --json outputs (tests/json_schemas.rs)
have cpio       || need+=(cpio)
have depmod     || need+=(kmod)   # depmod: the oracle for module dependencies
have zstd       || need+=(zstd)
have xz         || need+=(xz-utils)
have lz4        || need+=(lz4)
have bzip2      || need+=(bzip2)
have objcopy    || need+=(binutils)
have sbverify   || need+=(sbsigntool)   # signers, certificates and image hashes of EFI binaries (the oracle for `inspect`)
have virt-fw-vars || need+=(python3-virt-firmware)  # extracts db certificates from OVMF variable stores (Secure Boot oracle)
have openssl    || need+=(openssl)
have grub-mkstandalone || need+=(grub-common)
have mmdebstrap || need+=(mmdebstrap)  # the cloud image full mode boots (tests/images/make-cloud-image.sh)
have blkid      || need+=(util-linux)
have pvcreate   || need+=(lvm2)       # LVM2 test images: its tools write the metadata (the oracle)
have rpmbuild   || need+=(rpm)        # RPM kernel packages around a Debian kernel; rpm2cpio is the oracle
have dpkg-scanpackages || need+=(dpkg-dev)  # the kernel library test indexes an archive as Debian does
have createrepo_c || need+=(createrepo-c)   # ... and an RPM repository as Fedora and RHEL do
have chromium   || need+=(chromium)   # opens `run --html` reports headless in a test
have man        || need+=(man-db)     # renders the generated manual pages in a test
# Real Debian boot artifacts (kernels, GRUB, systemd-boot, shim) for arm64 too.
if ! dpkg --print-foreign-architectures | grep -qx arm64; then
  $SUDO dpkg --add-architecture arm64
  updated=""
fi
if [ ${#need[@]} -gt 0 ]; then
  echo "setup: installing ${need[*]}" >&2
  apt_update
  $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
# QEMU system emulators and firmware, matching the backports qemu-utils.
"$(dirname "$0")/install-qemu.sh"
# (Captured first: with pipefail, `--help | grep -q` fails when grep exits early.)
btrfs_help=$(mkfs.btrfs --help 2>&1 || true)
if [[ "$btrfs_help" != *--compress* ]]; then
  echo "setup: installing btrfs-progs from bookworm-backports (for mkfs.btrfs --compress)" >&2
  apt_update
  $SUDO apt-get install -y -qq --no-install-recommends -t bookworm-backports btrfs-progs >/dev/null
fi

if have rustup; then
  rustup component list --installed 2>/dev/null | grep -q '^clippy' || rustup component add clippy
  rustup component list --installed 2>/dev/null | grep -q '^rustfmt' || rustup component add rustfmt
fi
echo "setup: test dependencies present" >&2
