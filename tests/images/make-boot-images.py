#!/usr/bin/env python3
"""Builds boot-chain test images from real Debian binaries.

Usage: make-boot-images.py OUTDIR ARTIFACTS

ARTIFACTS is the output of tests/artifacts/fetch-debian-artifacts.sh. Every
image is a GPT disk (sgdisk) with an ESP (mkfs.vfat + mcopy) and an ext4
root (mkfs.ext4 -d), holding the packaged kernels, a busybox initramfs made
with cpio + gzip, shim, GRUB, systemd-boot, and a UKI made with objcopy from
systemd's stub. OUTDIR/boot-manifest.json records, per image, which source
files the default entry must extract to.
"""
import glob, json, os, shutil, subprocess, sys
from lvmtools import lvm  # shared by both image scripts

VERSION = "15"
MiB = 1 << 20
ROOT_UUID = "7c1f8a3e-2b44-4f0d-9d1e-6c9b7a3e2f22"


def run(*cmd, **kw):
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, **kw)


def write(path, data):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb" if isinstance(data, bytes) else "w") as f:
        f.write(data)


ROOT_MODULES = ["virtio_pci_legacy_dev", "virtio_pci_modern_dev", "virtio_pci", "virtio_blk", "crc16", "mbcache", "jbd2", "ext4"]


def initramfs(busybox, out, modules_root=None):
    """A busybox initramfs; with modules_root, plus the packaged modules
    needed to reach an ext4 root on virtio-blk."""
    d = out + ".d"
    os.makedirs(f"{d}/bin", exist_ok=True)
    shutil.copy(busybox, f"{d}/bin/busybox")
    for m in ROOT_MODULES if modules_root else []:
        found = glob.glob(f"{modules_root}/lib/modules/*/kernel/**/{m}.ko*", recursive=True) or \
            glob.glob(f"{modules_root}/usr/lib/modules/*/kernel/**/{m}.ko*", recursive=True)  # merged /usr
        for f in found[:1]:
            rel = os.path.relpath(f, modules_root).removeprefix("usr/")
            os.makedirs(os.path.dirname(f"{d}/{rel}"), exist_ok=True)
            shutil.copy(f, f"{d}/{rel}")
    write(f"{d}/init", "#!/bin/busybox sh\n/bin/busybox echo bootproof-init\n/bin/busybox poweroff -f\n")
    os.chmod(f"{d}/init", 0o755)
    files = subprocess.run(["find", "."], cwd=d, check=True, capture_output=True).stdout
    cpio = subprocess.run(["cpio", "-o", "-H", "newc", "--quiet"], cwd=d, input=files, check=True, capture_output=True).stdout
    gz = subprocess.run(["gzip", "-9", "-n"], input=cpio, check=True, capture_output=True).stdout
    write(out, gz)
    shutil.rmtree(d)


# The modules `bootproof verify` puts in its agent initramfs (a subset of
# the package's tree, no modules.dep: dependencies come from modinfo), and
# what `bootproof run` needs to mount the root under an overlay.
AGENT_MODULES = ["modules.builtin", "modules.order", "kernel/drivers/virtio", "kernel/fs/efivarfs",
                 "kernel/drivers/block/virtio_blk.ko", "kernel/drivers/char/virtio_console.ko",
                 "kernel/drivers/char/hw_random/virtio-rng.ko", "kernel/drivers/char/hw_random/rng-core.ko",
                 "kernel/fs/ext4", "kernel/fs/jbd2", "kernel/fs/mbcache.ko", "kernel/lib/crc16.ko",
                 "kernel/crypto/crc32c_generic.ko", "kernel/fs/overlayfs"]


def copy_modules(src_dir, dst_dir):
    """Copies AGENT_MODULES from a package's module directory, each file
    as packaged (`.ko`, or `.ko.xz`/`.ko.zst` where compressed)."""
    for rel in AGENT_MODULES:
        src, dst = f"{src_dir}/{rel}", f"{dst_dir}/{rel}"
        if os.path.isdir(src):
            shutil.copytree(src, dst)
            continue
        for suffix in ["", ".xz", ".zst"]:
            if os.path.exists(src + suffix):
                os.makedirs(os.path.dirname(dst), exist_ok=True)
                shutil.copy(src + suffix, dst + suffix)


def busybox_userland(busybox, bindir):
    """A busybox userland in `bindir`, for `bootproof run` to chroot into."""
    os.makedirs(bindir, exist_ok=True)
    shutil.copy(busybox, f"{bindir}/busybox")
    for tool in ["sh", "cat", "echo", "ls", "test", "uname", "id", "grep", "head", "tail", "printf",
                 "true", "false", "env", "touch", "mkdir", "rm", "wc", "sleep", "kill", "seq"]:
        os.symlink("busybox", f"{bindir}/{tool}")


def standalone_grub(target, pkg_root, output, cfg_path, cfg):
    """grub-mkstandalone with `cfg` as its memdisk boot/grub/grub.cfg."""
    write(cfg_path, cfg)
    run("grub-mkstandalone", "-O", target, "-d", f"{pkg_root}/usr/lib/grub/{target}",
        "--modules=part_gpt fat ext2 search configfile normal linux",
        "--install-modules=part_gpt fat ext2 search configfile normal linux echo test",
        "--locales=", "--themes=", "--fonts=",
        "-o", output, f"boot/grub/grub.cfg={cfg_path}")


def lvm_root(path, offset, size, split=False):
    """Makes partition (offset, size) of `path` an LVM2 PV holding VG
    "bootvg" with a linear LV "root" filling it, with the lvm2 tools on a
    loop device. With `split`, "root" is made in two pieces with an LV
    "gap" between them (created at half size, then extended past "gap"),
    as an LV grown after others were made is. Returns the LV's pieces in
    LV order as (byte offset in the disk, size), as `lvs --segments` says."""
    loop = subprocess.run(["losetup", "-f", "--show", "-o", str(offset), "--sizelimit", str(size), path],
                          check=True, capture_output=True, text=True).stdout.strip()
    new = ["-q", "--driverloaded", "n", "-an", "-Zn"]
    try:
        lvm("pvcreate", "-q", loop)
        lvm("vgcreate", "-q", "bootvg", loop)
        if split:
            lvm("lvcreate", *new, "-l", "50%FREE", "-n", "root", "bootvg")
            lvm("lvcreate", *new, "-l", "4", "-n", "gap", "bootvg")
            lvm("lvextend", "-q", "--driverloaded", "n", "-l", "+100%FREE", "bootvg/root")
        else:
            lvm("lvcreate", *new, "-l", "100%FREE", "-n", "root", "bootvg")
        segs = json.loads(lvm("lvs", "--segments", "--reportformat", "json", "--units", "b", "--nosuffix",
                              "-o", "seg_start,seg_pe_ranges,seg_size", "bootvg/root"))["report"][0]["seg"]
        pe_start = int(json.loads(lvm("pvs", "--reportformat", "json", "--units", "b", "--nosuffix",
                                      "-o", "pe_start", loop))["report"][0]["pv"][0]["pe_start"])
        extent = int(json.loads(lvm("vgs", "--reportformat", "json", "--units", "b", "--nosuffix",
                                    "-o", "vg_extent_size", "bootvg"))["report"][0]["vg"][0]["vg_extent_size"])
    finally:
        subprocess.run(["losetup", "-d", loop], check=False)
    pieces = []
    for seg in sorted(segs, key=lambda g: int(g["seg_start"])):
        first_pe = int(seg["seg_pe_ranges"].split(":")[-1].split("-")[0])
        pieces.append((offset + pe_start + first_pe * extent, int(seg["seg_size"])))
    assert len(pieces) == (2 if split else 1), pieces
    return pieces


def disk(path, esp_dir, root_dir, on_lvm=False, split=False, root_type="8305"):
    """GPT: ESP 64 MiB + ext4 root; the root filesystem UUID is fixed. With
    `on_lvm`, the second partition is an LVM2 PV and the root is its
    logical volume bootvg/root (in two pieces with `split`). Returns where
    the root filesystem's bytes are: (byte offset in the disk, size) pieces."""
    w = path + ".work"
    os.makedirs(w, exist_ok=True)
    esp_mib, root_mib = 64, 200
    with open(path, "wb") as f:
        f.truncate((esp_mib + root_mib + 2) * MiB)
    kind = "8E00" if on_lvm else root_type
    run("sgdisk", f"-n1:2048:+{esp_mib}M", "-t1:EF00", "-c1:esp", "-n2:0:0", f"-t2:{kind}", "-c2:root", path)
    run("mkfs.vfat", "-C", "-F", "32", "-n", "ESP", f"{w}/esp", str(esp_mib * 1024))
    entries = [os.path.join(esp_dir, n) for n in os.listdir(esp_dir)]
    if entries:
        run("mcopy", "-s", "-i", f"{w}/esp", *entries, "::/")
    start2 = 2048 + esp_mib * 2048
    size2 = (os.path.getsize(path) // 512 - 34 - start2) * 512
    pieces = [(start2 * 512, size2)]
    if on_lvm:
        pieces = lvm_root(path, start2 * 512, size2, split)
    size2 = sum(n for _, n in pieces)
    run("mkfs.ext4", "-q", "-L", "root", "-U", ROOT_UUID, "-d", root_dir, f"{w}/root", f"{size2 // 1024}k")
    # Each piece of the filesystem where the disk holds it. Sparse: all-zero
    # blocks stay holes (a CI machine's disk can be small).
    for img, offset, skip, count in [(f"{w}/esp", 2048 * 512, 0, esp_mib * MiB)] + \
            [(f"{w}/root", o, sum(n for _, n in pieces[:i]), n) for i, (o, n) in enumerate(pieces)]:
        run("dd", f"if={img}", f"of={path}", "bs=1M", f"seek={offset}", f"skip={skip}", f"count={count}",
            "oflag=seek_bytes", "iflag=skip_bytes,count_bytes", "conv=notrunc,sparse", "status=none")
    shutil.rmtree(w)
    return pieces


def main():
    out, art = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2])
    mpath = f"{out}/boot-manifest.json"
    if os.path.exists(mpath) and json.load(open(mpath)).get("version") == VERSION:
        return
    shutil.rmtree(out, ignore_errors=True)
    os.makedirs(out)
    images = {}
    for arch in ["arm64", "amd64"]:
        r = f"{art}/{arch}/root"
        kernel = glob.glob(f"{r}/boot/vmlinuz-*")[0]
        ver = os.path.basename(kernel)[len("vmlinuz-"):]
        initrd = f"{out}/initrd-{arch}.img"
        initramfs(f"{r}/bin/busybox", initrd, r)
        efi = "aa64" if arch == "arm64" else "x64"
        grub_dir = "arm64-efi" if arch == "arm64" else "x86_64-efi"
        console = "console=ttyAMA0" if arch == "arm64" else "console=ttyS0"
        # Debian layout: shim -> monolithic GRUB -> grub.cfg beside it ->
        # search.fs_uuid + configfile -> /boot/grub/grub.cfg (update-grub style).
        esp, root = f"{out}/w/esp", f"{out}/w/root"
        shutil.rmtree(f"{out}/w", ignore_errors=True)
        os.makedirs(f"{esp}/EFI/BOOT"); os.makedirs(f"{root}/boot/grub"); os.makedirs(f"{root}/etc")
        shutil.copy(f"{r}/usr/lib/shim/shim{efi}.efi.signed", f"{esp}/EFI/BOOT/BOOT{efi.upper()}.EFI")
        shutil.copy(f"{r}/usr/lib/grub/{grub_dir}/monolithic/grub{efi}.efi", f"{esp}/EFI/BOOT/grub{efi}.efi")
        write(f"{esp}/EFI/BOOT/grub.cfg", f"search.fs_uuid {ROOT_UUID} root\nset prefix=($root)'/boot/grub'\nconfigfile $prefix/grub.cfg\n")
        shutil.copy(kernel, f"{root}/boot/vmlinuz-{ver}")
        shutil.copy(initrd, f"{root}/boot/initrd.img-{ver}")
        shutil.copy(f"{r}/boot/config-{ver}", f"{root}/boot/config-{ver}")
        copy_modules(f"{r}/lib/modules/{ver}", f"{root}/lib/modules/{ver}")
        write(f"{root}/etc/os-release", 'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nID=debian\n')
        busybox_userland(f"{r}/bin/busybox", f"{root}/bin")
        write(f"{root}/etc/fstab", f"UUID={ROOT_UUID} / ext4 errors=remount-ro 0 1\n")
        write(f"{root}/boot/grub/grub.cfg", f"""# generated in the style of update-grub
set default="0"
set timeout=1
if [ -s $prefix/grubenv ]; then
  load_env
fi
function load_video {{
  insmod all_video
}}
menuentry 'Debian GNU/Linux' --class debian --class gnu-linux --class os $menuentry_id_option 'gnulinux-simple-{ROOT_UUID}' {{
	load_video
	insmod ext2
	search --no-floppy --fs-uuid --set=root {ROOT_UUID}
	echo	'Loading Linux {ver} ...'
	linux	/boot/vmlinuz-{ver} root=UUID={ROOT_UUID} ro quiet {console}
	echo	'Loading initial ramdisk ...'
	initrd	/boot/initrd.img-{ver}
}}
submenu 'Advanced options for Debian GNU/Linux' $menuentry_id_option 'gnulinux-advanced-{ROOT_UUID}' {{
	menuentry 'Debian GNU/Linux, with Linux {ver} (recovery mode)' {{
		linux	/boot/vmlinuz-{ver} root=UUID={ROOT_UUID} ro single
	}}
}}
""")
        name = f"debian-grub-{arch}.raw"
        disk(f"{out}/{name}", esp, root)
        images[name] = {"arch": "aarch64" if arch == "arm64" else "x86_64", "kernel": kernel, "initrd": initrd,
                        "cmdline": f"root=UUID={ROOT_UUID} ro quiet {console}", "loader": "grub", "version": ver}
        # The same with Debian's signed GRUB (grub-efi-*-signed: the
        # monolithic image signed by Debian's key), the whole chain signed.
        signed = f"{r}/usr/lib/grub/{grub_dir}-signed/grub{efi}.efi.signed"
        if os.path.exists(signed):
            shutil.copy(signed, f"{esp}/EFI/BOOT/grub{efi}.efi")
            disk(f"{out}/debian-signed-{arch}.raw", esp, root)
            images[f"debian-signed-{arch}.raw"] = dict(images[name])
            shutil.copy(f"{r}/usr/lib/grub/{grub_dir}/monolithic/grub{efi}.efi", f"{esp}/EFI/BOOT/grub{efi}.efi")
        if arch == "arm64":
            # Root (and /boot) on an LVM2 logical volume, as RHEL's and
            # Ubuntu Server's installers lay it out: GRUB reads the LV, the
            # kernel is told root=/dev/mapper/bootvg-root.
            lvm_cmdline = f"root=/dev/mapper/bootvg-root ro rd.lvm.lv=bootvg/root {console}"
            grub_cfg = open(f"{root}/boot/grub/grub.cfg").read()
            write(f"{root}/boot/grub/grub.cfg",
                  grub_cfg.replace(f"root=UUID={ROOT_UUID} ro quiet {console}", lvm_cmdline)
                  .replace("insmod ext2", "insmod lvm\n\tinsmod ext2"))
            write(f"{root}/etc/fstab", "/dev/mapper/bootvg-root / ext4 errors=remount-ro 0 1\n")
            for lvm_name, split in [("debian-lvm-arm64.raw", False), ("debian-lvm-split-arm64.raw", True)]:
                pieces = disk(f"{out}/{lvm_name}", esp, root, on_lvm=True, split=split)
                images[lvm_name] = {"arch": "aarch64", "kernel": kernel, "initrd": initrd,
                                "cmdline": lvm_cmdline, "loader": "grub", "version": ver,
                                "lv_pieces": pieces}
            write(f"{root}/boot/grub/grub.cfg", grub_cfg)
            write(f"{root}/etc/fstab", f"UUID={ROOT_UUID} / ext4 errors=remount-ro 0 1\n")
            # GRUB from grub-mkstandalone: its memdisk grub.cfg searches for the
            # root and hops to /boot/grub/grub.cfg there.
            shutil.rmtree(esp)
            os.makedirs(f"{esp}/EFI/BOOT")
            standalone_grub("arm64-efi", r, f"{esp}/EFI/BOOT/BOOTAA64.EFI", f"{out}/memdisk.cfg",
                            f"search.fs_uuid {ROOT_UUID} root\nconfigfile ($root)/boot/grub/grub.cfg\n")
            disk(f"{out}/grub-standalone-arm64.raw", esp, root)
            images["grub-standalone-arm64.raw"] = dict(images[name])
            # systemd-boot with Boot Loader Spec entries on the ESP; loader.conf's
            # default pattern picks the Debian entry over the (older) rescue one.
            shutil.rmtree(esp)
            os.makedirs(f"{esp}/EFI/BOOT"); os.makedirs(f"{esp}/loader/entries"); os.makedirs(f"{esp}/debian/{ver}")
            shutil.copy(f"{r}/usr/lib/systemd/boot/efi/systemd-bootaa64.efi", f"{esp}/EFI/BOOT/BOOTAA64.EFI")
            shutil.copy(kernel, f"{esp}/debian/{ver}/linux")
            shutil.copy(initrd, f"{esp}/debian/{ver}/initrd")
            write(f"{esp}/loader/loader.conf", "timeout 3\ndefault debian-*\n")
            write(f"{esp}/loader/entries/debian-{ver}.conf",
                  f"title Debian GNU/Linux\nversion {ver}\nlinux /debian/{ver}/linux\ninitrd /debian/{ver}/initrd\noptions root=UUID={ROOT_UUID} ro console=ttyAMA0\n")
            write(f"{esp}/loader/entries/zz-rescue.conf",
                  "title Rescue\nversion 99.0\nlinux /rescue/linux\noptions root=UUID=0000 single\n")
            disk(f"{out}/systemd-boot-arm64.raw", esp, root)
            images["systemd-boot-arm64.raw"] = {"arch": "aarch64", "kernel": kernel, "initrd": initrd,
                                                "cmdline": f"root=UUID={ROOT_UUID} ro console=ttyAMA0", "loader": "systemd-boot", "version": ver}
        if arch == "amd64":
            shutil.rmtree(esp)
            os.makedirs(f"{esp}/EFI/BOOT")
            standalone_grub("x86_64-efi", r, f"{esp}/EFI/BOOT/BOOTX64.EFI", f"{out}/memdisk.cfg",
                            f"search --no-floppy --fs-uuid --set=root {ROOT_UUID}\nconfigfile ($root)/boot/grub/grub.cfg\n")
            disk(f"{out}/grub-standalone-amd64.raw", esp, root)
            images["grub-standalone-amd64.raw"] = dict(images[name])
            # RHEL style: GRUB's blscfg reads /boot/loader/entries; options use $kernelopts from grubenv.
            shutil.rmtree(f"{out}/w")
            os.makedirs(f"{esp}/EFI/BOOT"); os.makedirs(f"{root}/boot/grub2"); os.makedirs(f"{root}/boot/loader/entries"); os.makedirs(f"{root}/etc")
            shutil.copy(f"{r}/usr/lib/shim/shimx64.efi.signed", f"{esp}/EFI/BOOT/BOOTX64.EFI")
            shutil.copy(f"{r}/usr/lib/grub/x86_64-efi/monolithic/grubx64.efi", f"{esp}/EFI/BOOT/grubx64.efi")
            write(f"{esp}/EFI/BOOT/grub.cfg", f"search --no-floppy --fs-uuid --set=dev {ROOT_UUID}\nset root=$dev\nset prefix=($dev)/boot/grub2\nexport $prefix\nconfigfile $prefix/grub.cfg\n")
            shutil.copy(kernel, f"{root}/boot/vmlinuz-{ver}")
            shutil.copy(initrd, f"{root}/boot/initramfs-{ver}.img")
            write(f"{root}/etc/os-release", 'PRETTY_NAME="Red Hat style test"\nID=rhelish\n')
            write(f"{root}/boot/grub2/grub.cfg", "set default=\"${saved_entry}\"\nset timeout=1\nload_env -f ($root)/boot/grub2/grubenv\nblscfg\n")
            env = f"# GRUB Environment Block\nkernelopts=root=UUID={ROOT_UUID} ro crashkernel=auto\nsaved_entry=\n"
            write(f"{root}/boot/grub2/grubenv", env + "#" * (1024 - len(env)))
            write(f"{root}/boot/loader/entries/rhel-{ver}.conf",
                  f"title Red Hat style ({ver})\nversion {ver}\nlinux /vmlinuz-{ver}\ninitrd /initramfs-{ver}.img\noptions $kernelopts console=ttyS0\n")
            disk(f"{out}/rhel-blscfg-amd64.raw", esp, root)
            images["rhel-blscfg-amd64.raw"] = {"arch": "x86_64", "kernel": kernel, "initrd": initrd,
                                               "cmdline": f"root=UUID={ROOT_UUID} ro crashkernel=auto console=ttyS0", "loader": "grub", "version": ver}
            # A UKI as the removable binary, assembled by objcopy from systemd's stub.
            shutil.rmtree(f"{out}/w")
            os.makedirs(f"{esp}/EFI/BOOT"); os.makedirs(f"{root}/etc")
            write(f"{out}/cmdline.txt", "root=PARTLABEL=root ro console=ttyS0")
            write(f"{out}/osrel.txt", 'PRETTY_NAME="UKI test"\n')
            write(f"{out}/uname.txt", ver)
            run("objcopy",
                "--add-section", f".osrel={out}/osrel.txt", "--change-section-vma", ".osrel=0x20000",
                "--add-section", f".cmdline={out}/cmdline.txt", "--change-section-vma", ".cmdline=0x30000",
                "--add-section", f".uname={out}/uname.txt", "--change-section-vma", ".uname=0x40000",
                "--add-section", f".linux={kernel}", "--change-section-vma", ".linux=0x2000000",
                "--add-section", f".initrd={initrd}", "--change-section-vma", ".initrd=0x3000000",
                f"{r}/usr/lib/systemd/boot/efi/linuxx64.efi.stub", f"{esp}/EFI/BOOT/BOOTX64.EFI")
            write(f"{root}/etc/os-release", 'PRETTY_NAME="UKI test"\nID=uki\n')
            disk(f"{out}/uki-amd64.raw", esp, root)
            images["uki-amd64.raw"] = {"arch": "x86_64", "kernel": kernel, "initrd": initrd,
                                       "cmdline": "root=PARTLABEL=root ro console=ttyS0", "loader": "uki", "version": ver}
        shutil.rmtree(f"{out}/w", ignore_errors=True)
    json.dump({"version": VERSION, "images": images}, open(mpath + ".tmp", "w"), indent=1)
    os.rename(mpath + ".tmp", mpath)


if __name__ == "__main__":
    main()
