//! Metadata checksums: XFS v5 (CRC32C) and Btrfs (all four checksum
//! kinds) made by mkfs are read back, and one flipped byte in a checksummed
//! structure is an error naming that structure, not believed data.

mod common;

use bootproof_image::OpenOptions;
use bootproof_inspect::{OpenedImage, PartSelector};
use common::*;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::process::Command;

/// A tiny tree for mkfs to copy in.
fn tree(dir: &Path) -> std::path::PathBuf {
    let t = dir.join("tree");
    std::fs::create_dir_all(t.join("etc")).unwrap();
    std::fs::write(t.join("etc/hostname"), b"checksummed\n").unwrap();
    t
}

fn sparse_file(path: &Path, size: u64) {
    std::fs::File::create(path).unwrap().set_len(size).unwrap();
}

fn flip(path: &Path, offset: u64) {
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .unwrap();
    let mut b = [0u8];
    f.read_exact_at(&mut b, offset).unwrap();
    f.write_all_at(&[b[0] ^ 0x20], offset).unwrap();
}

fn hostname(img: &Path) -> Result<Vec<u8>, String> {
    let opened = OpenedImage::open(img, &OpenOptions::default()).map_err(|e| e.to_string())?;
    let (_, v) = opened
        .volume(&PartSelector::Number(0))
        .map_err(|e| e.to_string())?;
    v.read(b"/etc/hostname").map_err(|e| e.to_string())
}

/// Byte offset of an inode, as xfs_db converts it.
fn xfs_inode_byte(img: &Path, ino: u64) -> u64 {
    let out = Command::new("xfs_db")
        .args(["-r", "-c", &format!("convert inode {ino} byte")])
        .arg(img)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    // "0x1234 (4660)"
    let dec = text
        .split(['(', ')'])
        .nth(1)
        .expect("xfs_db convert output");
    dec.trim().parse().unwrap()
}

#[test]
fn xfs_v5_checksums_name_the_damaged_structure() {
    let dir = scratch("sum", "xfs");
    let t = tree(&dir);
    let img = dir.join("v5.xfs");
    sparse_file(&img, 300 << 20);
    ok(Command::new("mkfs.xfs")
        .args(["-q", "-m", "crc=1", "-p"])
        .arg(xfs_proto(&dir, &t))
        .arg(&img));
    assert_eq!(hostname(&img).unwrap(), b"checksummed\n");

    // The root inode: a byte in its data fork (the shortform directory).
    let root = xfs_inode_byte(&img, 128);
    let bad_inode = dir.join("bad-inode.xfs");
    std::fs::copy(&img, &bad_inode).unwrap();
    flip(&bad_inode, root + 180);
    let e = hostname(&bad_inode).unwrap_err();
    assert!(e.contains("inode 128: CRC32C checksum mismatch"), "{e}");

    // The superblock: a byte of its label.
    let bad_sb = dir.join("bad-sb.xfs");
    std::fs::copy(&img, &bad_sb).unwrap();
    flip(&bad_sb, 108);
    let e = hostname(&bad_sb).unwrap_err();
    assert!(e.contains("superblock: CRC32C checksum mismatch"), "{e}");
}

/// mkfs.xfs -p protofile for `tree` with one directory and one file.
fn xfs_proto(dir: &Path, tree: &Path) -> std::path::PathBuf {
    let p = dir.join("proto");
    let text = format!(
        "/dev/null\n0 0\nd--755 0 0\netc d--755 0 0\nhostname ---644 0 0 {}\n$\n$\n",
        tree.join("etc/hostname").display()
    );
    std::fs::write(&p, text).unwrap();
    p
}

#[test]
fn btrfs_every_checksum_kind_reads_and_catches_damage() {
    let dir = scratch("sum", "btrfs");
    let t = tree(&dir);
    for (kind, shown) in [
        ("crc32c", "crc32c"),
        ("xxhash", "xxhash64"),
        ("sha256", "sha256"),
        ("blake2", "blake2b"),
    ] {
        let img = dir.join(format!("{kind}.btrfs"));
        sparse_file(&img, 128 << 20);
        ok(Command::new("mkfs.btrfs")
            .args(["-q", "-f", "--csum", kind, "--rootdir"])
            .arg(&t)
            .arg(&img));
        assert_eq!(hostname(&img).unwrap(), b"checksummed\n", "{kind}");

        // The superblock's label byte.
        flip(&img, 0x10000 + 0x12b);
        let e = hostname(&img).unwrap_err();
        assert!(
            e.contains(&format!("superblock: {shown} checksum mismatch")),
            "{kind}: {e}"
        );
        flip(&img, 0x10000 + 0x12b);

        // The root tree's block: a byte of its item area.
        let sb = std::fs::read(&img).unwrap();
        let root = u64::from_le_bytes(sb[0x10050..0x10058].try_into().unwrap());
        // Found by the address it records (metadata may be DUP: every copy).
        let node = u32::from_le_bytes(sb[0x10094..0x10098].try_into().unwrap()) as usize;
        let copies: Vec<usize> = (0..sb.len() / node)
            .map(|i| i * node)
            .filter(|&o| {
                sb[o + 0x30..o + 0x38] == root.to_le_bytes()
                    && sb[o + 0x20..o + 0x30] == sb[0x10020..0x10030]
            })
            .collect();
        assert!(!copies.is_empty(), "{kind}: root tree block on disk");
        for at in copies {
            flip(&img, (at + 200) as u64);
        }
        let e = hostname(&img).unwrap_err();
        assert!(
            e.contains(&format!("tree block {root:#x}: {shown} checksum mismatch")),
            "{kind}: {e}"
        );
    }
}
