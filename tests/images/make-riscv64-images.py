#!/usr/bin/env python3
"""Builds riscv64 boot-chain test images from Debian 13 riscv64 packages.

Usage: make-riscv64-images.py OUTDIR ARTIFACTS

ARTIFACTS is the output of tests/artifacts/fetch-riscv64-artifacts.sh. Each
image is a GPT disk (sgdisk) with an ESP (mkfs.vfat + mcopy) and an ext4
root (mkfs.ext4 -d), made with the helpers of make-boot-images.py: Debian's
riscv64 kernel (an EFI-stub `Image`, packaged as /boot/vmlinux-<ver>), a
busybox initramfs, and at the removable path \\EFI\\BOOT\\BOOTRISCV64.EFI
either GRUB (grub-mkstandalone -O riscv64-efi, from grub-efi-riscv64-bin)
hopping to an update-grub style /boot/grub/grub.cfg, or systemd-boot with
Boot Loader Spec entries. OUTDIR/manifest.json records, per image, the
source files the default entry must extract to.
"""
import glob, importlib.util, json, os, shutil, sys

HERE = os.path.dirname(os.path.abspath(__file__))
spec = importlib.util.spec_from_file_location("boot_images", f"{HERE}/make-boot-images.py")
bi = importlib.util.module_from_spec(spec)
sys.path.insert(0, HERE)
spec.loader.exec_module(bi)

VERSION = "2"
UUID = bi.ROOT_UUID
# The Discoverable Partitions root type for riscv64 (sgdisk has no short code).
ROOT_TYPE = "72EC70A6-CF74-40E6-BD49-4BDA08E8F224"


def main():
    out, art = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2])
    mpath = f"{out}/manifest.json"
    if os.path.exists(mpath) and json.load(open(mpath)).get("version") == VERSION:
        return
    shutil.rmtree(out, ignore_errors=True)
    os.makedirs(out)
    r = f"{art}/root"
    kernel = glob.glob(f"{r}/boot/vmlinux-*")[0]
    ver = os.path.basename(kernel)[len("vmlinux-"):]
    initrd = f"{out}/initrd-riscv64.img"
    # trixie installs busybox in /usr/bin (merged /usr).
    bi.initramfs(f"{r}/usr/bin/busybox", initrd, r)
    cmdline = f"root=UUID={UUID} ro console=ttyS0"
    images = {}
    esp, root = f"{out}/w/esp", f"{out}/w/root"
    # GRUB: a standalone image whose memdisk config finds the root and
    # hands over to the update-grub style config there.
    os.makedirs(f"{esp}/EFI/BOOT"); os.makedirs(f"{root}/boot/grub"); os.makedirs(f"{root}/etc")
    bi.standalone_grub("riscv64-efi", r, f"{esp}/EFI/BOOT/BOOTRISCV64.EFI", f"{out}/memdisk.cfg",
                       f"search --no-floppy --fs-uuid --set=root {UUID}\nconfigfile ($root)/boot/grub/grub.cfg\n")
    shutil.copy(kernel, f"{root}/boot/vmlinux-{ver}")
    shutil.copy(initrd, f"{root}/boot/initrd.img-{ver}")
    shutil.copy(f"{r}/boot/config-{ver}", f"{root}/boot/config-{ver}")
    # Merged /usr, as Debian 13 installs it: /bin and /lib are symlinks.
    os.symlink("usr/bin", f"{root}/bin"); os.symlink("usr/lib", f"{root}/lib")
    bi.copy_modules(f"{r}/usr/lib/modules/{ver}", f"{root}/usr/lib/modules/{ver}")
    bi.busybox_userland(f"{r}/usr/bin/busybox", f"{root}/usr/bin")
    bi.write(f"{root}/etc/os-release", 'PRETTY_NAME="Debian GNU/Linux 13 (trixie)"\nID=debian\n')
    bi.write(f"{root}/etc/fstab", f"UUID={UUID} / ext4 errors=remount-ro 0 1\n")
    bi.write(f"{root}/boot/grub/grub.cfg", f"""# generated in the style of update-grub
set default="0"
set timeout=1
menuentry 'Debian GNU/Linux' --class debian --class gnu-linux --class os $menuentry_id_option 'gnulinux-simple-{UUID}' {{
	insmod ext2
	search --no-floppy --fs-uuid --set=root {UUID}
	echo	'Loading Linux {ver} ...'
	linux	/boot/vmlinux-{ver} {cmdline}
	echo	'Loading initial ramdisk ...'
	initrd	/boot/initrd.img-{ver}
}}
""")
    bi.disk(f"{out}/debian-grub-riscv64.raw", esp, root, root_type=ROOT_TYPE)
    entry = {"arch": "riscv64", "kernel": kernel, "initrd": initrd, "cmdline": cmdline, "version": ver}
    images["debian-grub-riscv64.raw"] = dict(entry, loader="grub")
    # systemd-boot with Boot Loader Spec entries and the kernel on the ESP.
    shutil.rmtree(esp)
    os.makedirs(f"{esp}/EFI/BOOT"); os.makedirs(f"{esp}/loader/entries"); os.makedirs(f"{esp}/debian/{ver}")
    shutil.copy(f"{r}/usr/lib/systemd/boot/efi/systemd-bootriscv64.efi", f"{esp}/EFI/BOOT/BOOTRISCV64.EFI")
    shutil.copy(kernel, f"{esp}/debian/{ver}/linux")
    shutil.copy(initrd, f"{esp}/debian/{ver}/initrd")
    bi.write(f"{esp}/loader/loader.conf", "timeout 1\ndefault debian-*\n")
    bi.write(f"{esp}/loader/entries/debian-{ver}.conf",
             f"title Debian GNU/Linux\nversion {ver}\nlinux /debian/{ver}/linux\ninitrd /debian/{ver}/initrd\noptions {cmdline}\n")
    bi.disk(f"{out}/systemd-boot-riscv64.raw", esp, root, root_type=ROOT_TYPE)
    images["systemd-boot-riscv64.raw"] = dict(entry, loader="systemd-boot")
    shutil.rmtree(f"{out}/w")
    json.dump({"version": VERSION, "images": images}, open(mpath + ".tmp", "w"), indent=1)
    os.rename(mpath + ".tmp", mpath)


if __name__ == "__main__":
    main()
