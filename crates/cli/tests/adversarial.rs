//! Corrupt, truncated and hostile images get clear errors: never a panic,
//! a hang, or an allocation the input dictates.

mod common;

use bootproof_disk::{read_partition_table, TableKind};
use bootproof_fs::{open_volume, FileType, Volume};
use bootproof_image::{Image, OpenOptions, ReadAt};
use bootproof_inspect::{OpenedImage, PartSelector};
use common::*;
use std::collections::BTreeMap;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;

fn scratch(test: &str) -> Scratch {
    common::scratch("adv", test)
}

fn copy(name: &str, dir: &std::path::Path) -> PathBuf {
    let dst = dir.join(name);
    // Sparse-aware copy keeps this cheap for the 1 GiB disk.
    assert!(Command::new("cp")
        .arg("--sparse=always")
        .arg(image(name))
        .arg(&dst)
        .status()
        .unwrap()
        .success());
    dst
}

fn patch(path: &std::path::Path, offset: u64, bytes: &[u8]) {
    let f = std::fs::OpenOptions::new().write(true).open(path).unwrap();
    f.write_all_at(bytes, offset).unwrap();
}

fn read_at(path: &std::path::Path, offset: u64, len: usize) -> Vec<u8> {
    let mut b = vec![0u8; len];
    std::fs::File::open(path)
        .unwrap()
        .read_exact_at(&mut b, offset)
        .unwrap();
    b
}

/// Walks a volume breadth-first to a bounded depth, reading every file (up
/// to 1 MiB) and link, with a bound on the number of entries so directory
/// cycles end. Returns how many operations failed (errors are expected;
/// panics are not).
fn walk(v: &Volume, budget: usize) -> usize {
    let mut errors = 0;
    let mut queue = std::collections::VecDeque::from([b"/".to_vec()]);
    let mut seen = 0;
    while let Some(dir) = queue.pop_front() {
        if dir.iter().filter(|&&c| c == b'/').count() > 12 {
            continue;
        }
        let entries = match v.read_dir(&dir) {
            Ok(e) => e,
            Err(_) => {
                errors += 1;
                continue;
            }
        };
        for e in entries {
            seen += 1;
            if seen > budget {
                return errors;
            }
            let mut p = dir.clone();
            if !p.ends_with(b"/") {
                p.push(b'/');
            }
            p.extend_from_slice(&e.name);
            match e.file_type {
                FileType::Dir => queue.push_back(p),
                FileType::Symlink => {
                    errors += usize::from(v.read_link(&p).is_err() || v.metadata(&p).is_err())
                }
                _ => errors += usize::from(v.read_limited(&p, 1 << 20).is_err()),
            }
        }
    }
    errors
}

fn diag_codes(t: &bootproof_disk::PartitionTable) -> Vec<String> {
    t.diagnostics.iter().map(|d| d.code.clone()).collect()
}

fn table_of(path: &std::path::Path) -> bootproof_disk::PartitionTable {
    let img = Image::open(path, &OpenOptions::default()).unwrap();
    read_partition_table(&img).unwrap()
}

#[test]
fn gpt_damage_is_reported_and_the_backup_used() {
    let dir = scratch("gpt");
    // Flipped byte in the primary header.
    let p = copy("gpt.raw", &dir);
    let b = read_at(&p, 512 + 40, 1);
    patch(&p, 512 + 40, &[b[0] ^ 0xff]);
    let t = table_of(&p);
    assert!(
        diag_codes(&t).contains(&"gpt.primary.header-crc".into()),
        "{:?}",
        diag_codes(&t)
    );
    assert!(diag_codes(&t).contains(&"gpt.using-backup".into()));
    assert_eq!(t.partitions.len(), 5, "partitions come from the backup");
    // Flipped byte in the primary entry array.
    let p = copy("gpt.raw", &dir);
    patch(&p, 1024 + 60, b"X");
    let t = table_of(&p);
    let codes = diag_codes(&t);
    assert!(
        codes.contains(&"gpt.primary.entries-crc".into())
            && codes.contains(&"gpt.mismatch.entries".into()),
        "{codes:?}"
    );
    assert_eq!(
        t.partitions[1].name.as_deref(),
        Some("root"),
        "names come from the intact backup"
    );
    // Both copies broken: still no panic, every problem listed.
    let size = std::fs::metadata(&p).unwrap().len();
    patch(&p, size - 512 + 16, b"\0\0\0\0");
    let t = table_of(&p);
    let codes = diag_codes(&t);
    assert!(
        codes.contains(&"gpt.backup.header-crc".into())
            && codes.contains(&"gpt.no-valid-copy".into()),
        "{codes:?}"
    );
}

#[test]
fn gpt_claiming_four_billion_entries_is_refused() {
    let dir = scratch("gpt-entries");
    let p = copy("gpt.raw", &dir);
    let mut h = read_at(&p, 512, 92);
    h[80..84].copy_from_slice(&u32::MAX.to_le_bytes());
    h[16..20].fill(0);
    let crc = crc32fast::hash(&h);
    h[16..20].copy_from_slice(&crc.to_le_bytes());
    patch(&p, 512, &h);
    let t = table_of(&p);
    let codes = diag_codes(&t);
    assert!(
        codes.contains(&"gpt.primary.entry-count".into()),
        "{codes:?}"
    );
    assert_eq!(t.partitions.len(), 5, "the backup still describes the disk");
}

#[test]
fn truncated_disk_still_shows_what_survives() {
    let dir = scratch("truncated");
    let p = copy("gpt.raw", &dir);
    std::fs::OpenOptions::new()
        .write(true)
        .open(&p)
        .unwrap()
        .set_len(400 << 20)
        .unwrap();
    let t = table_of(&p);
    let codes = diag_codes(&t);
    assert_eq!(t.kind, TableKind::Gpt);
    assert!(
        codes.contains(&"gpt.backup.missing".into())
            && codes.contains(&"gpt.entry.past-end".into()),
        "{codes:?}"
    );
    let out = bootproof(&["inspect", "--json", p.to_str().unwrap()]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "inspect lists problems rather than failing"
    );
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(r["filesystems"][0]["type"], "vfat");
    assert!(r["filesystems"][0]["efi"].as_array().unwrap().len() >= 2);
    // The XFS partition is cut in half: reading past the end is an error.
    let out = bootproof(&["cat", p.to_str().unwrap(), "3:/dir-node/entry-04999-.txt"]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = bootproof(&["cat", p.to_str().unwrap(), "5:/root/hello.txt"]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn hostile_qcow2_headers_are_refused() {
    let dir = scratch("qcow2");
    let cases: &[(u64, &[u8], &str)] = &[
        (
            36,
            &0x7fff_ffffu32.to_be_bytes(),
            "L1 table of 2147483647 entries exceeds",
        ),
        (20, &40u32.to_be_bytes(), "cluster_bits 40"),
        (40, &(1u64 << 50).to_be_bytes(), "past the end"),
        (16, &5000u32.to_be_bytes(), "backing file name length 5000"),
    ];
    for (offset, bytes, needle) in cases {
        let p = copy("gpt-zstd.qcow2", &dir);
        if *offset == 16 {
            patch(&p, 8, &72u64.to_be_bytes()); // give it a backing-name offset
        }
        patch(&p, *offset, bytes);
        let out = bootproof(&["inspect", p.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(2));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(needle), "patch at {offset}: {err}");
    }
    // An L1 entry pointing past the end of the file: the read that needs it fails cleanly.
    let p = copy("gpt-zstd.qcow2", &dir);
    let l1 = u64::from_be_bytes(read_at(&p, 40, 8).try_into().unwrap());
    patch(
        &p,
        l1,
        &(0x00ff_ffff_ffff_0000u64 | (1 << 63)).to_be_bytes(),
    );
    let out = bootproof(&["inspect", p.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("L2 table offset") && err.contains("past the end"),
        "{err}"
    );
}

/// A 20 MiB FAT32 volume made by mkfs.vfat, one 512-byte sector a cluster.
fn fat32(img: &std::path::Path) {
    assert!(Command::new("mkfs.vfat")
        .args(["-C", "-F", "32", "-s", "1", "-S", "512"])
        .arg(img)
        .arg("40960")
        .stdout(std::process::Stdio::null())
        .status()
        .unwrap()
        .success());
}

#[test]
fn fat_cluster_chain_loop_ends_in_an_error() {
    let dir = scratch("fat");
    let img = dir.join("loop.fat");
    fat32(&img);
    let src = dir.join("files");
    std::fs::create_dir_all(&src).unwrap();
    let mut names = vec![];
    for i in 0..40 {
        let n = src.join(format!("F{i:02}.TXT"));
        std::fs::write(&n, format!("{i}")).unwrap();
        names.push(n);
    }
    let mut cmd = Command::new("mcopy");
    cmd.arg("-i").arg(&img).args(&names).arg("::/");
    assert!(cmd.status().unwrap().success());
    // Root directory cluster chain: make its second cluster point back to the first.
    let bpb = read_at(&img, 0, 512);
    let reserved = u64::from(u16::from_le_bytes([bpb[14], bpb[15]]));
    let root = u32::from_le_bytes(bpb[44..48].try_into().unwrap());
    let fat = reserved * 512;
    let next = u32::from_le_bytes(
        read_at(&img, fat + u64::from(root) * 4, 4)
            .try_into()
            .unwrap(),
    ) & 0x0fff_ffff;
    assert!(
        (2..0x0fff_fff0).contains(&next),
        "root directory spans more than one cluster"
    );
    for copy in 0..2u64 {
        let fat_size = u64::from(u32::from_le_bytes(bpb[36..40].try_into().unwrap())) * 512;
        patch(
            &img,
            fat + copy * fat_size + u64::from(next) * 4,
            &root.to_le_bytes(),
        );
    }
    let opened = OpenedImage::open(&img, &OpenOptions::default()).unwrap();
    let (_, v) = opened.volume(&PartSelector::Number(0)).unwrap();
    let err = v.read_dir(b"/").unwrap_err().to_string();
    assert!(
        err.contains("cyclic cluster chain") || err.contains("loops"),
        "{err}"
    );
    assert!(v.read(b"/MISSING.TXT").is_err());
}

/// A FAT file whose entry declares 4 GiB on a 20 MiB volume (with a
/// looping chain, fatfs would stream the loop up to that size) is refused
/// when opened, before anything is read.
#[test]
fn fat_file_larger_than_its_volume_is_refused() {
    let dir = scratch("fat-size");
    let img = dir.join("big.fat");
    fat32(&img);
    let file = dir.join("DATA.BIN");
    std::fs::write(&file, vec![7u8; 2048]).unwrap();
    assert!(Command::new("mcopy")
        .arg("-i")
        .arg(&img)
        .arg(&file)
        .arg("::/")
        .status()
        .unwrap()
        .success());
    // The 8.3 entry's size field (offset 28) in the root directory.
    let bytes = std::fs::read(&img).unwrap();
    let at = bytes
        .windows(11)
        .position(|w| w == b"DATA    BIN")
        .expect("the directory entry");
    patch(&img, at as u64 + 28, &u32::MAX.to_le_bytes());
    let opened = OpenedImage::open(&img, &OpenOptions::default()).unwrap();
    let (_, v) = opened.volume(&PartSelector::Number(0)).unwrap();
    let err = v.read(b"/DATA.BIN").unwrap_err().to_string();
    assert!(err.contains("declared"), "{err}");
}

/// Recomputes the CRC32C of the Btrfs tree block holding byte `at`, so a
/// crafted change gets past the checksum to the code behind it (as a
/// hostile image author would).
fn reseal_btrfs_block(path: &std::path::Path, at: u64) {
    let sb = read_at(path, 0x10000, 4096);
    let node = u64::from(u32::from_le_bytes(sb[0x94..0x98].try_into().unwrap()));
    let start = at - at % node;
    let mut block = read_at(path, start, node as usize);
    assert_eq!(
        block[0x20..0x30],
        sb[0x20..0x30],
        "a tree block starts at {start:#x}"
    );
    let crc = crc::Crc::<u32>::new(&crc::CRC_32_ISCSI).checksum(&block[32..]);
    block[..4].copy_from_slice(&crc.to_le_bytes());
    patch(path, start, &block[..4]);
}

#[test]
fn directory_cycles_terminate() {
    let dir = scratch("dircycle");
    // ext4: debugfs makes a second link to an ancestor directory.
    let p = copy("bare.ext4", &dir);
    assert!(Command::new("debugfs")
        .args(["-w", "-R", "link /deep /deep/level00/cycle"])
        .arg(&p)
        .stderr(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .status()
        .unwrap()
        .success());
    // XFS v4 and Btrfs: point the "dir-small" entry of the root at the root itself.
    let xfs = copy("bare-v4.xfs", &dir);
    let data = std::fs::read(&xfs).unwrap();
    let root_ino = u64::from_be_bytes(data[56..64].try_into().unwrap());
    let mut patched = 0;
    for at in find_all(&data, b"\x09dir-small") {
        patch(&xfs, (at - 8) as u64, &root_ino.to_be_bytes());
        patched += 1;
    }
    assert!(patched >= 1);
    let btrfs = copy("bare-suse.btrfs", &dir);
    let data = std::fs::read(&btrfs).unwrap();
    let mut patched = 0;
    for at in find_all(&data, b"dir-small") {
        // btrfs_dir_item: location key (17), transid (8), data_len (2), name_len (2), type (1), name.
        if at >= 30 && data[at - 3..at - 1] == [9, 0] && data[at - 30 + 8] == 1 {
            patch(&btrfs, (at - 30) as u64, &256u64.to_le_bytes());
            patched += 1;
            if patched == 1 {
                // Unsealed, the damage is caught by the tree block's checksum.
                let img = OpenedImage::open(&btrfs, &OpenOptions::default()).unwrap();
                let (_, v) = img.volume(&PartSelector::Number(0)).unwrap();
                let e = v.read_dir(b"/").unwrap_err().to_string();
                assert!(
                    e.contains("crc32c checksum mismatch") && e.contains("tree block"),
                    "{e}"
                );
            }
            reseal_btrfs_block(&btrfs, at as u64);
        }
    }
    assert!(patched >= 1);
    for (p, cycle) in [
        (
            &p,
            "/deep/level00/cycle/level00/cycle/level00/cycle/level00",
        ),
        (&xfs, "/dir-small/dir-small/dir-small/hello.txt"),
        (&btrfs, "/dir-small/dir-small/hello.txt"),
    ] {
        let img = OpenedImage::open(p, &OpenOptions::default()).unwrap();
        let (_, v) = img.volume(&PartSelector::Number(0)).unwrap();
        assert!(
            v.exists(cycle.as_bytes()).unwrap(),
            "{}: {cycle}",
            p.display()
        );
        walk(v, 20_000);
        let out = bootproof(&["inspect", p.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(0));
    }
}

#[test]
fn xfs_extent_btree_damage_is_detected() {
    let dir = scratch("bmbt");
    let cases: &[(&[&str], &str)] = &[
        (
            &[
                "write u.bmbt.numrecs 2",
                "write u.bmbt.keys[2].startoff 4096",
                "write u.bmbt.ptrs[2] PTR",
            ],
            "twice",
        ),
        (&["write u.bmbt.level 3"], "expected 2"),
    ];
    for (cmds, needle) in cases {
        let p = copy("bare-v4.xfs", &dir);
        let out = Command::new("xfs_db")
            .args(["-r", "-c", "path /dir-node", "-c", "p u.bmbt.ptrs[1]"])
            .arg(&p)
            .output()
            .unwrap();
        let ptr = String::from_utf8_lossy(&out.stdout)
            .rsplit('=')
            .next()
            .unwrap()
            .trim()
            .to_string();
        let mut cmd = Command::new("xfs_db");
        cmd.args(["-x", "-c", "path /dir-node"]);
        for c in *cmds {
            cmd.args(["-c", &c.replace("PTR", &ptr)]);
        }
        assert!(cmd
            .arg(&p)
            .stdout(std::process::Stdio::null())
            .status()
            .unwrap()
            .success());
        let img = OpenedImage::open(&p, &OpenOptions::default()).unwrap();
        let (_, v) = img.volume(&PartSelector::Number(0)).unwrap();
        let err = v.read_dir(b"/dir-node").unwrap_err().to_string();
        assert!(err.contains(needle), "{cmds:?}: {err}");
    }
}

fn find_all(hay: &[u8], needle: &[u8]) -> Vec<usize> {
    hay.windows(needle.len())
        .enumerate()
        .filter(|(_, w)| *w == needle)
        .map(|(i, _)| i)
        .collect()
}

/// A reader with some bytes replaced: corruption without copying images.
struct Patched {
    base: Arc<dyn ReadAt>,
    bytes: BTreeMap<u64, u8>,
}

impl ReadAt for Patched {
    fn size(&self) -> u64 {
        self.base.size()
    }
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        self.base.read_at(offset, buf)?;
        for (&at, &b) in self.bytes.range(offset..offset + buf.len() as u64) {
            buf[(at - offset) as usize] = b;
        }
        Ok(())
    }
}

/// xorshift64*: deterministic seeds without a dependency.
fn rng(seed: u64) -> impl FnMut() -> u64 {
    let mut s = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    move || {
        s ^= s >> 12;
        s ^= s << 25;
        s ^= s >> 27;
        s.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

/// Flips bytes (mostly in the metadata-dense start) of real images and
/// exercises every parser on the result: errors are fine, panics are not.
#[test]
fn random_corruption_never_panics() {
    let targets: &[(&str, u32, u64)] = &[
        ("floppy.fat12", 0, 64 << 10),
        ("bare.ext4", 0, 4 << 20),
        ("bare-v4.xfs", 0, 1 << 20),
        ("bare-suse.btrfs", 0, 32 << 20),
        ("tree.iso", 0, 2 << 20),
    ];
    for &(name, _, hot) in targets {
        let base = Image::open(image(name), &OpenOptions::default())
            .unwrap()
            .reader();
        for seed in 0..40u64 {
            let mut next = rng(seed + 1);
            let mut bytes = BTreeMap::new();
            for _ in 0..12 {
                let at = if next().is_multiple_of(4) {
                    next() % base.size()
                } else {
                    next() % hot.min(base.size())
                };
                bytes.insert(at, next() as u8);
            }
            let dev: Arc<dyn ReadAt> = Arc::new(Patched {
                base: Arc::clone(&base),
                bytes,
            });
            let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                if let Ok(Some(v)) = open_volume(Arc::clone(&dev)) {
                    let _ = v.fs().label();
                    let _ = v.fs().embedded();
                    walk(&v, 3000);
                }
            }));
            assert!(result.is_ok(), "{name}: seed {seed} panicked");
        }
    }
    // Partition tables and qcow2 metadata too.
    for name in ["gpt.raw", "mbr.raw", "gpt4k.raw"] {
        let base = Image::open(image(name), &OpenOptions::default())
            .unwrap()
            .reader();
        let size = base.size();
        for seed in 0..200u64 {
            let mut next = rng(seed + 1000);
            let mut bytes = BTreeMap::new();
            for _ in 0..6 {
                let region = next() % 3;
                let at = match region {
                    0 => next() % 34 * 512,
                    1 => size - 1 - next() % (33 * 512),
                    _ => next() % (64 * 4096),
                };
                bytes.insert(at, next() as u8);
            }
            let dev = Patched {
                base: Arc::clone(&base),
                bytes,
            };
            let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                read_partition_table(&dev).map(|_| ())
            }));
            assert!(r.is_ok(), "{name}: seed {seed} panicked");
        }
    }
}

#[test]
fn random_qcow2_metadata_corruption_never_panics() {
    let dir = scratch("qcow2-fuzz");
    let src = image("gpt-zstd.qcow2");
    let original = std::fs::read(&src).unwrap();
    let l1 = u64::from_be_bytes(original[40..48].try_into().unwrap()) as usize;
    for seed in 0..30u64 {
        let mut next = rng(seed + 77);
        let mut data = original[..(8 << 20).min(original.len())].to_vec();
        for _ in 0..8 {
            let at = match next() % 3 {
                0 => (next() % 512) as usize,
                1 => l1 + (next() % 4096) as usize,
                _ => (next() % data.len() as u64) as usize,
            };
            if at < data.len() {
                data[at] = next() as u8;
            }
        }
        let p = dir.join("fuzzed.qcow2");
        std::fs::write(&p, &data).unwrap();
        let out = bootproof(&["inspect", "--json", p.to_str().unwrap()]);
        assert!(
            matches!(out.status.code(), Some(0 | 2)),
            "seed {seed}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn hybrid_mbr_is_detected() {
    let dir = scratch("hybrid");
    let p = copy("gpt.raw", &dir);
    // sgdisk -h writes a hybrid MBR listing GPT partitions 1 and 2.
    assert!(Command::new("sgdisk")
        .args(["-h", "1:2"])
        .arg(&p)
        .stdout(std::process::Stdio::null())
        .status()
        .unwrap()
        .success());
    let t = table_of(&p);
    assert_eq!(t.kind, TableKind::Gpt);
    assert_eq!(t.mbr, bootproof_disk::MbrKind::Hybrid);
    assert!(diag_codes(&t).contains(&"mbr.hybrid".into()));
    assert_eq!(
        t.partitions.len(),
        5,
        "UEFI reads the GPT, not the hybrid entries"
    );
}
