#!/usr/bin/env python3
"""Builds bootproof's test images with independent, real tools.

Usage: make-test-images.py OUTDIR

Every image is made from one known source tree (OUTDIR/tree, plus a
FAT-compatible subset OUTDIR/fat-tree) by sgdisk/sfdisk, mkfs.vfat+mcopy,
mkfs.ext2/3/4 -d, mkfs.xfs -p (protofile), mkfs.btrfs --rootdir (with and
without --compress and subvolumes), xorriso (Rock Ridge + Joliet + El Torito)
and qemu-img/qemu-io. bootproof's tests then read every file back and
compare it byte for byte with the tree. This script only orchestrates;
it writes no on-disk structure itself.

OUTDIR/manifest.json describes every image: its path, and for each slot
(partition number, 0 for a bare filesystem) which tree it holds.
The script is idempotent: a finished OUTDIR (manifest present, same script
version) is left alone.
"""
import hashlib, json, os, random, shutil, subprocess, sys
from lvmtools import lvm  # shared by both image scripts

VERSION = "15"
MiB = 1024 * 1024


def run(*cmd, env=None, **kw):
    e = dict(os.environ)
    e.update(env or {})
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, env=e, **kw)


def write(path, data):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)


def make_tree(root, rng, fat=False):
    """The source tree. fat=True leaves out what FAT cannot hold."""
    write(f"{root}/hello.txt", b"hello, bootproof\n")
    write(f"{root}/empty", b"")
    write(f"{root}/big.bin", rng.randbytes(12 * MiB + 12345))
    lines = b"".join(b"line %08d: the quick brown fox jumps over the lazy dog\n" % i for i in range(50000))
    write(f"{root}/compressible.txt", lines)
    write(f"{root}/etc/os-release", b'PRETTY_NAME="bootproof test tree"\nNAME="bptest"\nID=bptest\nVERSION_ID="1"\n')
    write(f"{root}/boot/vmlinuz-6.1.0-test", rng.randbytes(300000))
    write(f"{root}/boot/initrd.img-6.1.0-test", rng.randbytes(200000))
    write(f"{root}/EFI/BOOT/BOOTAA64.EFI", b"MZ" + rng.randbytes(70000))
    # Deep directories.
    d = f"{root}/deep"
    for i in range(12 if fat else 40):
        d = f"{d}/level{i:02d}"
    write(f"{d}/bottom.txt", b"at the bottom\n")
    # Directories sized to hit every XFS directory form and ext4 htrees.
    for name, count in [("dir-small", 5), ("dir-block", 60), ("dir-leaf", 300)] + ([] if fat else [("dir-node", 5000)]):
        for i in range(count):
            write(f"{root}/{name}/entry-{i:05d}-{'x' * (i % 23)}.txt", b"%s #%d\n" % (name.encode(), i))
    # Non-ASCII and long names.
    write(f"{root}/ünïcödé-名前.txt", "ünïcödé content ✓\n".encode())
    write(f"{root}/This is a rather long file name.text", b"long name\n")
    if fat:
        return
    write(f"{root}/emoji-🚀.txt", "rocket 🚀\n".encode())
    # Sparse file: data islands in a large hole.
    with open(f"{root}/sparse.img", "wb") as f:
        for i in range(40):
            f.seek(i * 256 * 1024)
            f.write(rng.randbytes(4096))
        f.truncate(20 * MiB)
    # Symlinks of every kind.
    os.symlink("/hello.txt", f"{root}/link-abs")
    os.symlink("../hello.txt", f"{root}/dir-small/link-rel")
    os.symlink("deep/level00/level01", f"{root}/link-dir")
    os.symlink("/does/not/exist", f"{root}/link-dangling")
    os.symlink("loop-b", f"{root}/loop-a")
    os.symlink("loop-a", f"{root}/loop-b")
    os.symlink("link-self", f"{root}/link-self")
    os.symlink("../../../../../../etc/hostname", f"{root}/dir-small/link-escape")
    long_target = "/deep/" + "/".join(f"level{i:02d}" for i in range(40)) + "/bottom.txt"
    os.symlink(long_target, f"{root}/link-long")
    os.symlink("vmlinuz-6.1.0-test", f"{root}/boot/vmlinuz")


# Names a protofile cannot express (it splits on white space).
XFS_SKIP = ["This is a rather long file name.text"]


def xfs_protofile(tree, out):
    """mkfs.xfs protofile for `tree` (format: xfsprogs mkfs/proto.c)."""
    lines = ["/dev/null", "0 0", "d--755 0 0"]

    def walk(path, depth):
        for name in sorted(os.listdir(path)):
            if any(c.isspace() for c in name):
                continue  # protofiles split on white space; see XFS_SKIP
            full = os.path.join(path, name)
            pad = " " * depth
            if os.path.islink(full):
                lines.append(f"{pad}{name} l--777 0 0 {os.readlink(full)}")
            elif os.path.isdir(full):
                lines.append(f"{pad}{name} d--755 0 0")
                walk(full, depth + 1)
                lines.append(f"{pad}$")
            else:
                lines.append(f"{pad}{name} ---644 0 0 {full}")

    walk(tree, 1)
    lines.append("$")
    with open(out, "w") as f:
        f.write("\n".join(lines) + "\n")


def fat_image(path, tree, size_mib, fat_bits, label):
    run("mkfs.vfat", "-C", "-F", str(fat_bits), "-n", label, "-i", "B007C0DE", path, str(size_mib * 1024))
    entries = [os.path.join(tree, n) for n in sorted(os.listdir(tree))]
    run("mcopy", "-s", "-i", path, *entries, "::/")


def htree(ext_image):
    """mke2fs -d writes big directories as linear lists; e2fsck -D rebuilds
    them as hashed (htree) directories, the form real ext4 roots have."""
    subprocess.run(["e2fsck", "-fyD", ext_image], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def lvm_image(out, W, tree, images):
    disk = f"{out}/lvm.raw"
    with open(disk, "wb") as f:
        f.truncate(130 * MiB)
    run("sgdisk", "-n1:0:+64M", "-t1:8E00", "-c1:pv-a", "-n2:0:+64M", "-t2:8E00", "-c2:pv-b", disk)
    info = subprocess.run(["sgdisk", "-p", disk], check=True, capture_output=True, text=True).stdout
    parts = {}
    for line in info.splitlines():
        f = line.split()
        if f and f[0].isdigit():
            parts[int(f[0])] = (int(f[1]) * 512, (int(f[2]) - int(f[1]) + 1) * 512)
    loops = []
    try:
        for n in (1, 2):
            off, size = parts[n]
            loops.append(subprocess.run(["losetup", "-f", "--show", "-o", str(off), "--sizelimit", str(size), disk],
                                        check=True, capture_output=True, text=True).stdout.strip())
        a, b = loops
        lvm("pvcreate", "-q", a, b)
        lvm("vgcreate", "-q", "-s", "1M", "bp-vg", a, b)
        lvm("lvcreate", "-q", "--driverloaded", "n", "-an", "-Zn", "-L", "40M", "-n", "root", "bp-vg", a)
        lvm("lvextend", "-q", "--driverloaded", "n", "-L", "+16M", "bp-vg/root", b)
        lvm("lvcreate", "-q", "--driverloaded", "n", "-an", "-Zn", "-i", "2", "-I", "64k", "-L", "12M",
            "-n", "data-lv", "bp-vg", a, b)
        segs = json.loads(lvm("lvs", "--segments", "--reportformat", "json", "--units", "b", "--nosuffix",
                              "-o", "lv_name,seg_start_pe,seg_size_pe,stripes,stripe_size,seg_pe_ranges", "bp-vg"))
        pvs = json.loads(lvm("pvs", "--reportformat", "json", "--units", "b", "--nosuffix", "-o", "pv_name,pe_start"))
        extent = int(json.loads(lvm("vgs", "--reportformat", "json", "--units", "b", "--nosuffix",
                                    "-o", "vg_extent_size", "bp-vg"))["report"][0]["vg"][0]["vg_extent_size"])
        lvm("vgchange", "-q", "--driverloaded", "n", "-an", "bp-vg")
    finally:
        for l in loops:
            subprocess.run(["losetup", "-d", l], check=False)
    pe_start = {p["pv_name"]: int(p["pe_start"]) for p in pvs["report"][0]["pv"]}
    part_of = {loops[0]: parts[1][0], loops[1]: parts[2][0]}
    # The filesystems, each the size of its LV.
    sizes = {}
    for seg in segs["report"][0]["seg"]:
        sizes[seg["lv_name"]] = sizes.get(seg["lv_name"], 0) + int(seg["seg_size_pe"]) * extent
    run("mkfs.ext4", "-q", "-L", "lvroot", "-d", tree, f"{W}/lvroot.ext4", f"{sizes['root'] // 1024}k")
    small = f"{out}/lv-tree"
    rng = random.Random(14)
    write(f"{small}/striped.bin", rng.randbytes(3 * MiB + 12345))
    write(f"{small}/dir/note.txt", b"on a striped logical volume\n")
    run("mkfs.ext4", "-q", "-L", "lvdata", "-d", small, f"{W}/lvdata.ext4", f"{sizes['data-lv'] // 1024}k")
    data = {"root": open(f"{W}/lvroot.ext4", "rb").read(), "data-lv": open(f"{W}/lvdata.ext4", "rb").read()}
    with open(disk, "r+b") as d:
        for seg in segs["report"][0]["seg"]:
            fs = data[seg["lv_name"]]
            start = int(seg["seg_start_pe"]) * extent
            length = int(seg["seg_size_pe"]) * extent
            # "/dev/loop0:0-39 /dev/loop1:8-13": each stripe's PV and extents.
            legs = []
            for r in seg["seg_pe_ranges"].split():
                dev, rng = r.rsplit(":", 1)
                legs.append(part_of[dev] + pe_start[dev] + int(rng.split("-")[0]) * extent)
            chunk = int(seg["stripe_size"]) or length
            for i in range(length // chunk):
                leg, row = i % len(legs), i // len(legs)
                d.seek(legs[leg] + row * chunk)
                d.write(fs[start + i * chunk:start + (i + 1) * chunk])
    images.append({"name": "lvm.raw", "format": "raw", "table": "gpt", "sector_size": 512, "slots": {
        "3": {"fs": "ext4", "tree": "tree", "label": "lvroot", "lv": "bp-vg/root"},
        "4": {"fs": "ext4", "tree": "lv-tree", "label": "lvdata", "lv": "bp-vg/data-lv"}}})


def place(disk, fs_image, offset, limit):
    """Copies a filesystem image into its partition; it must fit."""
    size = os.path.getsize(fs_image)
    assert size <= limit, f"{fs_image} is {size} bytes, partition holds {limit}"
    # Sparse: all-zero blocks stay holes, so the disk costs what it holds
    # (a CI machine's disk can be small).
    run("dd", f"if={fs_image}", f"of={disk}", "bs=1M", f"seek={offset}", "oflag=seek_bytes",
        "conv=notrunc,sparse", "status=none")
    os.unlink(fs_image)


def main():
    out = os.path.abspath(sys.argv[1])
    manifest_path = os.path.join(out, "manifest.json")
    if os.path.exists(manifest_path):
        with open(manifest_path) as f:
            if json.load(f).get("version") == VERSION:
                return
    if os.path.exists(out):
        shutil.rmtree(out)
    os.makedirs(out)
    rng = random.Random(20261124)
    tree, fat_tree = f"{out}/tree", f"{out}/fat-tree"
    make_tree(tree, rng)
    make_tree(fat_tree, random.Random(7), fat=True)
    images = []
    W = f"{out}/work"
    os.makedirs(W)

    # --- GPT disk, 512-byte sectors: ESP (FAT32), ext4, XFS, Btrfs (zstd), Btrfs (subvolumes, lzo).
    gpt = f"{out}/gpt.raw"
    parts = [  # (number, size MiB, type code, name)
        (1, 64, "EF00", "EFI System"),
        (2, 160, "8305", "root"),
        (3, 320, "8300", "xfs-data"),
        (4, 320, "8300", "btrfs-zstd"),
        (5, 320, "8300", "btrfs-subvol"),
    ]
    total = 1 + sum(p[1] for p in parts) + 1
    with open(gpt, "wb") as f:
        f.truncate(total * MiB)
    args = ["sgdisk", "-U", "6D0E5B6A-6BE1-4C02-9F7B-17C00F2D93A1"]
    for n, size, code, name in parts:
        args += [f"-n{n}:0:+{size}M", f"-t{n}:{code}", f"-c{n}:{name}"]
    run(*args, gpt)
    starts = {}
    info = subprocess.run(["sgdisk", "-p", gpt], check=True, capture_output=True, text=True).stdout
    for line in info.splitlines():
        f = line.split()
        if f and f[0].isdigit():
            starts[int(f[0])] = (int(f[1]) * 512, (int(f[2]) - int(f[1]) + 1) * 512)
    fat_image(f"{W}/esp.fat", fat_tree, 64, 32, "ESP")
    place(gpt, f"{W}/esp.fat", starts[1][0], starts[1][1])
    run("mkfs.ext4", "-q", "-L", "root", "-U", "3f1c9a8e-7d55-4c1b-9c5e-0a7e2b6d4f10", "-d", tree, f"{W}/root.ext4", f"{starts[2][1] // 1024}k")
    htree(f"{W}/root.ext4")
    place(gpt, f"{W}/root.ext4", starts[2][0], starts[2][1])
    xfs_protofile(tree, f"{W}/proto")
    with open(f"{W}/xfs.img", "wb") as f:
        f.truncate(starts[3][1])
    run("mkfs.xfs", "-q", "-L", "xfsdata", "-m", "uuid=5b8e0f3c-2a44-4f0d-8d1e-6c9b7a3e2f11", "-p", f"{W}/proto", f"{W}/xfs.img")
    place(gpt, f"{W}/xfs.img", starts[3][0], starts[3][1])
    with open(f"{W}/b1.img", "wb") as f:
        f.truncate(starts[4][1])
    run("mkfs.btrfs", "-q", "-L", "btrfs-zstd", "-U", "9a1f2e3d-4c5b-6a79-8e0f-1d2c3b4a5968", "-b", str(starts[4][1]), "--compress", "zstd", "--rootdir", tree, f"{W}/b1.img")
    place(gpt, f"{W}/b1.img", starts[4][0], starts[4][1])
    # Fedora-style: subvolumes "root" and "home" under the top level (the
    # default subvolume stays the top level), compressed with lzo.
    sub = f"{W}/subvol-src"
    shutil.copytree(tree, f"{sub}/root", symlinks=True)
    os.makedirs(f"{sub}/home/user")
    write(f"{sub}/home/user/notes.txt", b"in the home subvolume\n")
    with open(f"{W}/b2.img", "wb") as f:
        f.truncate(starts[5][1])
    run("mkfs.btrfs", "-q", "-L", "btrfs-subvol", "-b", str(starts[5][1]), "--compress", "lzo", "--rootdir", sub,
        "--subvol", "rw:root", "--subvol", "rw:home", f"{W}/b2.img")
    place(gpt, f"{W}/b2.img", starts[5][0], starts[5][1])
    shutil.rmtree(sub)
    images.append({"name": "gpt.raw", "format": "raw", "table": "gpt", "sector_size": 512, "slots": {
        "1": {"fs": "vfat", "tree": "fat-tree", "label": "ESP"},
        "2": {"fs": "ext4", "tree": "tree", "label": "root"},
        "3": {"fs": "xfs", "tree": "tree", "label": "xfsdata", "skip": XFS_SKIP},
        "4": {"fs": "btrfs", "tree": "tree", "label": "btrfs-zstd"},
        "5": {"fs": "btrfs", "tree": "tree", "label": "btrfs-subvol", "prefix": "/root"}}})

    # --- qcow2 conversions of the same disk, and a backing chain.
    for name, extra in [("gpt.qcow2", []), ("gpt-deflate.qcow2", ["-c"]),
                        ("gpt-zstd.qcow2", ["-c", "-o", "compression_type=zstd"]),
                        ("gpt-v2.qcow2", ["-o", "compat=0.10"]),
                        ("gpt-extl2.qcow2", ["-o", "extended_l2=on,cluster_size=128k"])]:
        run("qemu-img", "convert", "-O", "qcow2", *extra, gpt, f"{out}/{name}")
        images.append({"name": name, "format": "qcow2", "same_as": "gpt.raw"})
    # --- VHD (QEMU's vpc): fixed, and dynamic (sized by CHS geometry, as
    # Virtual PC and QEMU write it: a little larger than the source).
    for name, sub in [("gpt-fixed.vhd", "fixed"), ("gpt-dynamic.vhd", "dynamic")]:
        run("qemu-img", "convert", "-O", "vpc", "-o", f"subformat={sub}", gpt, f"{out}/{name}")
        images.append({"name": name, "format": "vpc", "same_as": "gpt.raw"})
    # --- VHDX: dynamic (QEMU's default), and fixed with 1 MiB blocks.
    for name, opts in [("gpt-dynamic.vhdx", "subformat=dynamic"),
                       ("gpt-fixed.vhdx", "subformat=fixed,block_size=1M")]:
        run("qemu-img", "convert", "-O", "vhdx", "-o", opts, gpt, f"{out}/{name}")
        images.append({"name": name, "format": "vhdx", "same_as": "gpt.raw"})
    # --- VMDK: a hosted sparse file, a stream (OVA's kind: compressed
    # grains, directory at the end), a descriptor with a flat extent, and a
    # descriptor with sparse pieces.
    for name, sub in [("gpt-sparse.vmdk", "monolithicSparse"), ("gpt-stream.vmdk", "streamOptimized"),
                      ("gpt-flat.vmdk", "monolithicFlat"), ("gpt-2gb.vmdk", "twoGbMaxExtentSparse")]:
        run("qemu-img", "convert", "-O", "vmdk", "-o", f"subformat={sub}", gpt, f"{out}/{name}")
        images.append({"name": name, "format": "vmdk", "subformat": sub, "same_as": "gpt.raw"})
    # --- Containers, each made by the tool a publisher uses: an OVA (`tar`
    # of the OVF descriptor, its manifest and the stream VMDK, in that
    # order), a Fedora-style `.raw.xz`, GCE's `disk.raw` in a `.tar.gz`
    # (GNU format, as GCE's import asks), and a sparse one (`tar -S`).
    ova = f"{W}/ova"
    os.makedirs(ova, exist_ok=True)
    shutil.copy(f"{out}/gpt-stream.vmdk", f"{ova}/gpt-disk1.vmdk")
    with open(f"{ova}/gpt.ovf", "w") as f:
        f.write('<?xml version="1.0"?>\n<Envelope xmlns:ovf="http://schemas.dmtf.org/ovf/envelope/1">\n'
                '  <References><File ovf:href="gpt-disk1.vmdk" ovf:id="file1"/></References>\n'
                '  <DiskSection><Disk ovf:diskId="vmdisk1" ovf:fileRef="file1"/></DiskSection>\n</Envelope>\n')
    with open(f"{ova}/gpt.mf", "w") as f:
        f.write("SHA256(gpt-disk1.vmdk)= " + hashlib.sha256(open(f"{ova}/gpt-disk1.vmdk", "rb").read()).hexdigest() + "\n")
    run("tar", "-cf", f"{out}/gpt.ova", "-C", ova, "gpt.ovf", "gpt.mf", "gpt-disk1.vmdk")
    images.append({"name": "gpt.ova", "format": "vmdk", "container": "ova", "same_as": "gpt.raw"})
    with open(f"{out}/gpt.raw.xz", "wb") as f:
        subprocess.run(["xz", "-1", "-T2", "-c", gpt], check=True, stdout=f)
    images.append({"name": "gpt.raw.xz", "format": "raw", "container": "xz", "same_as": "gpt.raw"})
    gce = f"{W}/gce"
    os.makedirs(gce, exist_ok=True)
    run("cp", "--sparse=always", gpt, f"{gce}/disk.raw")
    run("tar", "--format=oldgnu", "-czf", f"{out}/gpt.tar.gz", "-C", gce, "disk.raw")
    images.append({"name": "gpt.tar.gz", "format": "raw", "container": "tar+gzip", "same_as": "gpt.raw"})
    run("tar", "--format=oldgnu", "-Sczf", f"{out}/gpt-sparse.tar.gz", "-C", gce, "disk.raw")
    images.append({"name": "gpt-sparse.tar.gz", "format": "raw", "container": "tar+gzip", "same_as": "gpt.raw"})
    run("qemu-img", "create", "-q", "-f", "qcow2", "-b", "gpt-zstd.qcow2", "-F", "qcow2", f"{out}/overlay.qcow2")
    run("qemu-img", "create", "-q", "-f", "qcow2", "-o", "extended_l2=on", "-b", "overlay.qcow2", "-F", "qcow2", f"{out}/overlay2.qcow2")
    # A write through the chain, into the gap after the last partition.
    gap = (total - 1) * MiB + 4096
    run("qemu-io", "-f", "qcow2", "-c", f"write -P 0xa5 {gap} 8192", f"{out}/overlay2.qcow2")
    images.append({"name": "overlay2.qcow2", "format": "qcow2", "backing": True, "chain": 3,
                   "pattern": {"offset": gap, "length": 8192, "byte": 0xa5}})

    # --- LVM2: two PVs (GPT partitions) in VG "bp-vg", written by the lvm2
    # tools themselves on loop devices; no device mapper is needed (LVs are
    # never activated: --driverloaded n). Filesystems go where LVM's own
    # report (`lvs --segments`, `pvs`) says each extent is: "root" is
    # linear across both PVs (two segments), "data-lv" striped over both.
    lvm_image(out, W, tree, images)

    # --- MBR disk: FAT16 primary, extended with ext2 and ext3 logicals.
    mbr = f"{out}/mbr.raw"
    with open(mbr, "wb") as f:
        f.truncate(200 * MiB)
    subprocess.run(["sfdisk", "-q", mbr], check=True, text=True, stdout=subprocess.DEVNULL,
                   input="label: dos\nlabel-id: 0x1234abcd\n,40M,0e,*\n,,05\n,60M,83\n,60M,83\n")
    sf = json.loads(subprocess.run(["sfdisk", "-J", mbr], check=True, capture_output=True, text=True).stdout)
    ps = {int(p["node"].rsplit("raw", 1)[1]): (p["start"] * 512, p["size"] * 512) for p in sf["partitiontable"]["partitions"]}
    fat_image(f"{W}/fat16.img", fat_tree, 40, 16, "FAT16VOL")
    place(mbr, f"{W}/fat16.img", ps[1][0], ps[1][1])
    run("mkfs.ext2", "-q", "-L", "ext2vol", "-d", fat_tree, f"{W}/e2.img", f"{ps[5][1] // 1024}k")
    place(mbr, f"{W}/e2.img", ps[5][0], ps[5][1])
    run("mkfs.ext3", "-q", "-L", "ext3vol", "-d", fat_tree, f"{W}/e3.img", f"{ps[6][1] // 1024}k")
    place(mbr, f"{W}/e3.img", ps[6][0], ps[6][1])
    images.append({"name": "mbr.raw", "format": "raw", "table": "mbr", "sector_size": 512, "slots": {
        "1": {"fs": "vfat", "tree": "fat-tree", "label": "FAT16VOL"},
        "5": {"fs": "ext2", "tree": "fat-tree", "label": "ext2vol"},
        "6": {"fs": "ext3", "tree": "fat-tree", "label": "ext3vol"}}})

    # --- GPT with 4096-byte logical sectors (sfdisk --sector-size).
    g4k = f"{out}/gpt4k.raw"
    with open(g4k, "wb") as f:
        f.truncate(180 * MiB)
    # util-linux 2.38's sfdisk has no --sector-size; fdisk -b does.
    subprocess.run(["fdisk", "-b", "4096", g4k], check=True, text=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL, input="g\nn\n1\n\n+40M\nt\n1\nn\n2\n\n\nw\n")
    listing = subprocess.run(["fdisk", "-b", "4096", "-l", g4k], check=True, capture_output=True, text=True).stdout
    ps = {}
    for line in listing.splitlines():
        f = line.split()
        if f and f[0].startswith(g4k) and f[0] != g4k:
            ps[int(f[0].rsplit("raw", 1)[1])] = (int(f[1]) * 4096, int(f[3]) * 4096)
    fat_image(f"{W}/fat4k.img", fat_tree, 40, 32, "ESP4K")
    place(g4k, f"{W}/fat4k.img", ps[1][0], ps[1][1])
    run("mkfs.ext4", "-q", "-b", "4096", "-L", "data4k", "-d", fat_tree, f"{W}/e4k.img", f"{ps[2][1] // 1024}k")
    place(g4k, f"{W}/e4k.img", ps[2][0], ps[2][1])
    images.append({"name": "gpt4k.raw", "format": "raw", "table": "gpt", "sector_size": 4096, "slots": {
        "1": {"fs": "vfat", "tree": "fat-tree", "label": "ESP4K"},
        "2": {"fs": "ext4", "tree": "fat-tree", "label": "data4k"}}})

    # --- Bare filesystems (no partition table).
    run("mkfs.ext4", "-q", "-L", "bare", "-d", tree, f"{out}/bare.ext4", "100M")
    htree(f"{out}/bare.ext4")
    images.append({"name": "bare.ext4", "format": "raw", "table": "none", "slots": {"0": {"fs": "ext4", "tree": "tree", "label": "bare"}}})
    small = f"{W}/fat12-tree"
    write(f"{small}/README.TXT", b"a FAT12 floppy\n")
    write(f"{small}/Sub Dir/Nested file name.txt", rng.randbytes(30000))
    run("mkfs.vfat", "-C", "-F", "12", "-n", "FLOPPY", f"{out}/floppy.fat12", "1440")
    run("mcopy", "-s", "-i", f"{out}/floppy.fat12", f"{small}/README.TXT", f"{small}/Sub Dir", "::/")
    images.append({"name": "floppy.fat12", "format": "raw", "table": "none", "slots": {"0": {"fs": "vfat", "tree": "work/fat12-tree", "label": "FLOPPY"}}})
    with open(f"{out}/bare-v4.xfs", "wb") as f:
        f.truncate(320 * MiB)
    # XFS v4 (no CRCs, no ftype): deprecated upstream but still on older RHEL images.
    run("mkfs.xfs", "-q", "-f", "-m", "crc=0", "-n", "ftype=0", "-p", f"{W}/proto", "-L", "xfsv4",
        f"{out}/bare-v4.xfs", stderr=subprocess.DEVNULL)
    images.append({"name": "bare-v4.xfs", "format": "raw", "table": "none", "slots": {"0": {"fs": "xfs", "tree": "tree", "label": "xfsv4", "skip": XFS_SKIP}}})

    # openSUSE-style: the OS lives in a nested subvolume that is the default.
    sub = f"{W}/suse-src"
    shutil.copytree(tree, f"{sub}/@/.snapshots/1/snapshot", symlinks=True)
    with open(f"{out}/bare-suse.btrfs", "wb") as f:
        f.truncate(300 * MiB)
    run("mkfs.btrfs", "-q", "-L", "suse", "-b", str(300 * MiB), "--compress", "zlib", "--rootdir", sub,
        "--subvol", "rw:@", "--subvol", "rw:@/.snapshots", "--subvol", "default:@/.snapshots/1/snapshot",
        f"{out}/bare-suse.btrfs")
    shutil.rmtree(sub)
    images.append({"name": "bare-suse.btrfs", "format": "raw", "table": "none", "slots": {"0": {"fs": "btrfs", "tree": "tree", "label": "suse"}}})

    # --- ISO9660 with Rock Ridge, Joliet and an El Torito EFI image.
    iso_src = f"{W}/iso-src"
    shutil.copytree(tree, iso_src, symlinks=True)
    os.unlink(f"{iso_src}/sparse.img")  # ISO has no holes; the bytes are still compared via tree
    fat_image(f"{iso_src}/efiboot.img", fat_tree, 32, 16, "EFIBOOT")
    shutil.copy(f"{iso_src}/efiboot.img", f"{W}/efiboot.img")
    run("xorriso", "-as", "mkisofs", "-quiet", "-R", "-J", "-joliet-long", "-V", "BOOTPROOF_ISO",
        "-e", "efiboot.img", "-no-emul-boot", "-o", f"{out}/tree.iso", iso_src)
    images.append({"name": "tree.iso", "format": "raw", "table": "none", "slots": {
        "0": {"fs": "iso9660", "tree": "tree", "label": "BOOTPROOF_ISO", "skip": ["sparse.img"],
              "extra": ["boot.catalog", "efiboot.img"]},
        "1": {"fs": "vfat", "tree": "fat-tree", "label": "EFIBOOT", "eltorito": True}}})
    shutil.rmtree(iso_src)

    manifest = {"version": VERSION, "images": images}
    with open(manifest_path + ".tmp", "w") as f:
        json.dump(manifest, f, indent=1)
    os.rename(manifest_path + ".tmp", manifest_path)


if __name__ == "__main__":
    main()
