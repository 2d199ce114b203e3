#!/usr/bin/env python3
"""Builds the committed fuzz corpus seeds from small images made by real tools.

Usage: fuzz/make-seeds.py   (writes fuzz/corpus/<target>/seed-*)

Filesystem seeds use the sparse format of bootproof_fuzz::SparseDev:
repeated (offset u64 LE, length u16 LE, bytes), holding only the non-zero
sectors of the image, so superblocks stay at their real offsets.
"""
import glob, os, shutil, struct, subprocess, tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
CORPUS = os.path.join(HERE, "corpus")
MAX_SEED = 1 << 20


def run(*cmd, **kw):
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, **kw)


def sparse(path):
    out = bytearray()
    with open(path, "rb") as f:
        data = f.read()
    i = 0
    while i < len(data):
        if data[i:i + 512].strip(b"\0") == b"":
            i += 512
            continue
        start = i
        while i < len(data) and data[i:i + 512].strip(b"\0") != b"" and i - start < 65024:
            i += 512
        chunk = data[start:i]
        if len(out) + len(chunk) + 10 > MAX_SEED:
            break
        out += struct.pack("<QH", start, len(chunk)) + chunk
    return bytes(out)


def save(target, name, data):
    d = os.path.join(CORPUS, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, f"seed-{name}"), "wb") as f:
        f.write(data)


def tree(root):
    os.makedirs(f"{root}/dir/sub", exist_ok=True)
    with open(f"{root}/hello.txt", "w") as f:
        f.write("hello\n")
    with open(f"{root}/dir/sub/data.bin", "wb") as f:
        f.write(bytes(range(256)) * 40)
    for i in range(40):
        with open(f"{root}/dir/file{i:02d}.txt", "w") as f:
            f.write(f"{i}\n" * 30)
    os.symlink("../hello.txt", f"{root}/dir/link")
    os.symlink("/dir/sub/data.bin", f"{root}/abs-link")


def main():
    w = tempfile.mkdtemp()
    t = f"{w}/tree"
    tree(t)
    # FAT (no symlinks): copy files only.
    for bits, size in [(12, 1024), (16, 20480), (32, 40960)]:
        img = f"{w}/fat{bits}.img"
        run("mkfs.vfat", "-C", "-F", str(bits), "-s", "1", img, str(size))
        run("mcopy", "-i", img, f"{t}/hello.txt", f"{t}/dir/sub/data.bin", "::/")
        save("fs_fat", f"fat{bits}", sparse(img))
    img = f"{w}/e.img"
    run("mkfs.ext4", "-q", "-d", t, img, "4M")
    save("fs_ext4", "ext4", sparse(img))
    run("mkfs.ext2", "-q", "-F", "-d", t, img, "2M")
    save("fs_ext4", "ext2", sparse(img))
    proto = f"{w}/proto"
    with open(proto, "w") as f:
        f.write(f"/dev/null\n0 0\nd--755 0 0\n hello.txt ---644 0 0 {t}/hello.txt\n abs-link l--777 0 0 /dir/sub/data.bin\n"
                f" dir d--755 0 0\n  link l--777 0 0 ../hello.txt\n"
                + "".join(f"  file{i:02d}.txt ---644 0 0 {t}/dir/file{i:02d}.txt\n" for i in range(40))
                + f"  sub d--755 0 0\n   data.bin ---644 0 0 {t}/dir/sub/data.bin\n  $\n $\n$\n")
    for name, opts in [("v5", []), ("v4", ["-m", "crc=0", "-n", "ftype=0"])]:
        img = f"{w}/x-{name}.img"
        with open(img, "wb") as f:
            f.truncate(300 << 20)
        run("mkfs.xfs", "-q", "-f", *opts, "-p", proto, img)
        save("fs_xfs", name, sparse(img))
    for comp in ["no", "zstd", "lzo"]:
        img = f"{w}/b-{comp}.img"
        with open(img, "wb") as f:
            f.truncate(128 << 20)
        run("mkfs.btrfs", "-q", "-f", "--compress", comp, "--rootdir", t, img)
        save("fs_btrfs", comp, sparse(img))
    efi = f"{w}/iso/efi.img"
    os.makedirs(f"{w}/iso")
    shutil.copytree(t, f"{w}/iso/t", symlinks=True)
    run("mkfs.vfat", "-C", efi, "1440")
    run("mcopy", "-i", efi, f"{t}/hello.txt", "::/")
    run("xorriso", "-as", "mkisofs", "-R", "-J", "-e", "efi.img", "-no-emul-boot", "-o", f"{w}/t.iso", f"{w}/iso")
    save("fs_iso9660", "rr-joliet-eltorito", sparse(f"{w}/t.iso"))
    run("xorriso", "-as", "mkisofs", "-o", f"{w}/plain.iso", f"{w}/iso/t")
    save("fs_iso9660", "plain", sparse(f"{w}/plain.iso"))
    # Partition tables: small whole disks.
    disk = f"{w}/gpt.img"
    with open(disk, "wb") as f:
        f.truncate(1 << 20)
    run("sgdisk", "-n1:34:+200K", "-t1:EF00", "-n2:0:0", "-c2:root", disk)
    save("disk_partition_table", "gpt", open(disk, "rb").read())
    mbr = f"{w}/mbr.img"
    with open(mbr, "wb") as f:
        f.truncate(1 << 20)
    subprocess.run(["sfdisk", "-q", mbr], check=True, text=True, input="label: dos\n,200K,0c,*\n,,05\n,100K,83\n,,83\n", stdout=subprocess.DEVNULL)
    save("disk_partition_table", "mbr-logical", open(mbr, "rb").read())
    # qcow2: a small disk with data, in each compression.
    raw = f"{w}/q.raw"
    with open(raw, "wb") as f:
        f.write(bytes(range(256)) * 1024 + b"\0" * (1 << 20) + b"bootproof" * 5000)
    for name, extra in [("plain", []), ("deflate", ["-c"]), ("zstd", ["-c", "-o", "compression_type=zstd"]), ("v2", ["-o", "compat=0.10"])]:
        q = f"{w}/q-{name}.qcow2"
        run("qemu-img", "convert", "-O", "qcow2", "-o", "cluster_size=4096", *extra, raw, q)
        save("image_qcow2", name, open(q, "rb").read())
    boot_seeds(w)
    package_seeds(w)
    script_seeds()
    open_image_seeds(w)
    shutil.rmtree(w)


def boot_seeds(w):
    """Kernel, initrd, PE and GRUB-config seeds from real packages and tools."""
    art = os.path.join(os.path.dirname(HERE), "target", "debian-artifacts")
    ws = os.path.dirname(HERE)
    run(os.path.join(ws, "tests/artifacts/fetch-debian-artifacts.sh"), art)
    r = f"{art}/arm64/root"
    kernel = open(glob.glob(f"{r}/boot/vmlinuz-*")[0], "rb").read()
    # Kernel seeds: the Image's head (headers, stub) and small wrapped payloads.
    save("boot_kernel", "arm64-image-head", kernel[:65536])
    bz = open(glob.glob(f"{art}/amd64/root/boot/vmlinuz-*")[0], "rb").read()
    save("boot_kernel", "bzimage-head", bz[:65536])
    small = kernel[:200000]
    for name, tool in [("gzip", ["gzip", "-c"]), ("zstd", ["zstd", "-c", "-q"]), ("xz", ["xz", "-c"]), ("lz4", ["lz4", "-l", "-c", "-q"])]:
        packed = subprocess.run(tool, input=small, capture_output=True, check=True).stdout
        save("boot_kernel", f"wrapped-{name}", packed)
    # Initrd seeds: an uncompressed and a gzip'd cpio.
    t = f"{w}/initrd"
    os.makedirs(f"{t}/lib/modules/6.1.0-x/kernel", exist_ok=True)
    with open(f"{t}/init", "w") as f:
        f.write("#!/bin/sh\n")
    with open(f"{t}/lib/modules/6.1.0-x/kernel/virtio_blk.ko", "wb") as f:
        f.write(b"\x7fELF")
    files = subprocess.run(["find", "."], cwd=t, capture_output=True, check=True).stdout
    cpio = subprocess.run(["cpio", "-o", "-H", "newc", "--quiet"], cwd=t, input=files, capture_output=True, check=True).stdout
    save("boot_initrd", "cpio", cpio)
    save("boot_initrd", "early-plus-gzip", cpio + b"\0" * (512 - len(cpio) % 512) + subprocess.run(["gzip", "-c"], input=cpio, capture_output=True, check=True).stdout)
    # PE seeds: real EFI binaries (systemd-boot is small; GRUB heads).
    save("boot_pe", "systemd-bootaa64", open(f"{r}/usr/lib/systemd/boot/efi/systemd-bootaa64.efi", "rb").read())
    save("boot_pe", "linuxaa64-stub", open(f"{r}/usr/lib/systemd/boot/efi/linuxaa64.efi.stub", "rb").read())
    save("boot_pe", "kernel-pe-head", kernel[:8192])
    # Secure Boot seeds: Debian's signed shim (two Authenticode signatures,
    # .sbat, .sbatlevel, .vendor_cert), its .sbatlevel alone (objcopy) and
    # an SbatLevel variable's text.
    save("boot_pe", "shimaa64-signed", open(f"{r}/usr/lib/shim/shimaa64.efi.signed", "rb").read())
    subprocess.run(["objcopy", "-O", "binary", "--only-section=.sbatlevel",
                    f"{art}/amd64/root/usr/lib/shim/shimx64.efi.signed", f"{w}/sbatlevel"], check=True)
    save("boot_pe", "shim-sbatlevel", open(f"{w}/sbatlevel", "rb").read())
    save("boot_pe", "sbat-level-variable", b"sbat,1,2024010900\nshim,4\ngrub,3\ngrub.debian,4\n")
    # GRUB configuration seeds.
    save("boot_grub_cfg", "debian", (
        "set default=\"0\"\nif [ -s $prefix/grubenv ]; then\n  load_env\nfi\n"
        "menuentry 'Debian GNU/Linux' --class debian $menuentry_id_option 'gnulinux-simple' {\n"
        "\tsearch --no-floppy --fs-uuid --set=root --hint-efi=hd0,gpt2 7c1f8a3e\n"
        "\tlinux\t/boot/vmlinuz root=UUID=7c1f8a3e ro quiet\n\tinitrd\t/boot/initrd.img\n}\n").encode())
    save("boot_grub_cfg", "rhel", b"search.fs_uuid abcd root\nset prefix=($root)'/boot/grub2'\nload_env -f ${config_directory}/grubenv\nblscfg\n")


def package_seeds(w):
    """Kernel package seeds: small .debs built by dpkg-deb, one per data.tar compression."""
    t = f"{w}/pkg"
    shutil.rmtree(t, ignore_errors=True)
    os.makedirs(f"{t}/DEBIAN"); os.makedirs(f"{t}/boot"); os.makedirs(f"{t}/lib/modules/6.1.0-x/kernel/fs")
    os.makedirs(f"{t}/usr/share/doc/linux-image-6.1.0-x")
    with open(f"{t}/DEBIAN/control", "w") as f:
        f.write("Package: linux-image-6.1.0-x\nVersion: 1\nArchitecture: arm64\nMaintainer: seed <seed@example.invalid>\nDescription: seed\n")
    with open(f"{t}/boot/vmlinuz-6.1.0-x", "wb") as f:
        f.write(b"MZ" + b"\0" * 54 + b"ARM\x64" + b"\0" * 200)
    with open(f"{t}/lib/modules/6.1.0-x/kernel/fs/ext4.ko", "wb") as f:
        f.write(b"\x7fELF" + b"\0" * 60)
    with open(f"{t}/usr/share/doc/linux-image-6.1.0-x/copyright", "w") as f:
        f.write("seed\n")
    os.symlink("/usr/src/linux-headers-6.1.0-x", f"{t}/lib/modules/6.1.0-x/build")
    for z in ["xz", "zstd", "gzip", "none"]:
        run("dpkg-deb", "--root-owner-group", f"-Z{z}", "--build", t, f"{w}/seed.deb")
        save("boot_kernel_package", f"deb-{z}", open(f"{w}/seed.deb", "rb").read())


def script_seeds():
    """Seeds for the GRUB interpreter, BLS/glob and module-closure targets."""
    save("boot_grub_script", "debian", open(os.path.join(CORPUS, "boot_grub_cfg", "seed-debian"), "rb").read())
    save("boot_grub_script", "nested", (
        "set a=1\nif [ \"$a\" = 1 -a ! -z \"$grub_cpu\" ]; then\n  if test -f /vmlinuz-6.1.0-fuzz; then\n"
        "    source /EFI/BOOT/extra.cfg\n  elif [ -e /nope ]; then\n    set b=2\n  else\n    load_env -f /EFI/BOOT/grubenv\n  fi\nfi\n"
        "submenu 'Advanced' {\n menuentry 'deep' { linux /vmlinuz-6.1.0-fuzz $b\n initrd /initrd.img-6.1.0-fuzz }\n}\n"
        "insmod blscfg\nblscfg\n").encode())
    save("boot_bls", "fedora", b"Fedora*\0Fedora-6.1.0.conf\0title Fedora Linux\nversion 6.1.0\nlinux /vmlinuz-6.1.0\n"
         b"initrd /initramfs-6.1.0.img\noptions root=UUID=1234 ro $kernelopts\ngrub_users $grub_users\n")
    save("boot_module_closure", "cycle", b"virtio_blk a\0"
         b"kernel/drivers/block/virtio_blk.ko: kernel/drivers/virtio/virtio.ko\nkernel/a.ko: kernel/b.ko\nkernel/b.ko: kernel/a.ko\n"
         b"kernel/drivers/virtio/virtio.ko:\n\0kernel/fs/ext4/ext4.ko\n"
         b"\0kernel/a.ko\n\x7fELF a" b"\0kernel/b.ko\n\x7fELF b"
         b"\0kernel/drivers/block/virtio_blk.ko\n\x7fELF v" b"\0kernel/drivers/virtio/virtio.ko\n\x7fELF w")


def open_image_seeds(w):
    """A GPT disk with an ESP (grub.cfg, a BLS entry) and an ext4 root
    (os-release, fstab, a kernel config), sparse-encoded for open_image."""
    esp, root, disk = f"{w}/esp.img", f"{w}/root.img", f"{w}/open.img"
    for p in (esp, root, disk):
        if os.path.exists(p):
            os.remove(p)
    run("mkfs.vfat", "-C", esp, str(8 * 1024))
    os.makedirs(f"{w}/espt/EFI/BOOT", exist_ok=True)
    os.makedirs(f"{w}/espt/loader/entries", exist_ok=True)
    with open(f"{w}/espt/EFI/BOOT/grub.cfg", "w") as f:
        f.write("search --fs-uuid --set=root 1234-ABCD\nmenuentry 'Seed' {\n linux /boot/vmlinuz-6.1.0 root=/dev/vda2 ro console=ttyS0\n initrd /boot/initrd.img-6.1.0\n}\n")
    with open(f"{w}/espt/loader/entries/seed.conf", "w") as f:
        f.write("title Seed\nlinux /vmlinuz\noptions root=/dev/vda2\n")
    # systemd-boot (the boot_pe seed, from Debian's arm64 package) at the
    # removable path, so the chain reaches the BLS entries.
    shutil.copy(os.path.join(CORPUS, "boot_pe", "seed-systemd-bootaa64"), f"{w}/espt/EFI/BOOT/BOOTAA64.EFI")
    with open(f"{w}/espt/loader/loader.conf", "w") as f:
        f.write("default seed*\ntimeout 0\n")
    run("mcopy", "-s", "-i", esp, f"{w}/espt/EFI", f"{w}/espt/loader", "::/")
    rt = f"{w}/roott"
    shutil.rmtree(rt, ignore_errors=True)
    os.makedirs(f"{rt}/etc"); os.makedirs(f"{rt}/boot")
    with open(f"{rt}/etc/os-release", "w") as f:
        f.write('ID=debian\nVERSION_ID="12"\nPRETTY_NAME="Seed"\n')
    with open(f"{rt}/etc/fstab", "w") as f:
        f.write("UUID=1234 / ext4 errors=remount-ro 0 1\n/dev/vda1 /boot/efi vfat umask=0077 0 1\n")
    with open(f"{rt}/boot/config-6.1.0", "w") as f:
        f.write("CONFIG_VIRTIO_BLK=m\nCONFIG_EXT4_FS=y\n# CONFIG_XFS_FS is not set\n")
    run("mkfs.ext4", "-q", "-d", rt, root, "16M")
    with open(disk, "wb") as f:
        f.truncate(40 << 20)
    subprocess.run(["sfdisk", "-q", disk], input=b"label: gpt\nstart=2048, size=16384, type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B\nstart=18432, size=32768, type=0FC63DAF-8483-4772-8E79-3D69D8477DE4\n", check=True)
    with open(disk, "r+b") as f:
        f.seek(2048 * 512); f.write(open(esp, "rb").read())
        f.seek(18432 * 512); f.write(open(root, "rb").read())
    save("open_image", "gpt-esp-ext4", sparse(disk))


if __name__ == "__main__":
    main()
