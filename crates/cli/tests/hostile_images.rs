//! Hostile images built in-process, one per class of attack the issue
//! names, each small (at most 64 MiB): every command that opens an image
//! ends with a result or a clear error, never a crash. The images are left
//! in `target/hostile/` for `scripts/bench-hostile.py`, which measures each
//! command's time and peak memory on them (tests never assert times).

mod common;

use common::*;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Where the images are written (kept for the benchmark script).
fn out_dir() -> PathBuf {
    let d = workspace().join("target/hostile");
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A FAT volume holding `files` (paths with `/`), made with the fatfs crate.
fn fat_volume(size: usize, files: &[(String, Vec<u8>)]) -> Vec<u8> {
    let mut disk = std::io::Cursor::new(vec![0u8; size]);
    fatfs::format_volume(&mut disk, fatfs::FormatVolumeOptions::new()).unwrap();
    {
        let fs = fatfs::FileSystem::new(&mut disk, fatfs::FsOptions::new()).unwrap();
        for (path, body) in files {
            let mut dir = fs.root_dir();
            let mut parts: Vec<&str> = path.split('/').collect();
            let name = parts.pop().unwrap();
            for d in parts {
                dir = dir.open_dir(d).or_else(|_| dir.create_dir(d)).unwrap();
            }
            dir.create_file(name).unwrap().write_all(body).unwrap();
        }
    }
    disk.into_inner()
}

/// systemd-boot for arm64 (Debian's, kept as a fuzz seed): the loader
/// that makes the chain read `loader.conf` and the BLS entries.
fn systemd_boot() -> Vec<u8> {
    std::fs::read(workspace().join("fuzz/corpus/boot_pe/seed-systemd-bootaa64")).unwrap()
}

/// gzip members of 64 MiB of zeros, repeated to inflate past 1 GiB: about
/// 1 MiB on disk.
fn gzip_bomb() -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&vec![0u8; 64 << 20]).unwrap();
    gz.finish().unwrap().repeat(17)
}

/// The ESP-and-root volume every BLS-based class starts from.
fn base_files(loader_conf: &str, entry: &str) -> Vec<(String, Vec<u8>)> {
    vec![
        ("EFI/BOOT/BOOTAA64.EFI".into(), systemd_boot()),
        ("loader/loader.conf".into(), loader_conf.as_bytes().to_vec()),
        (
            "loader/entries/hostile.conf".into(),
            entry.as_bytes().to_vec(),
        ),
        ("vmlinuz".into(), b"not a kernel".to_vec()),
    ]
}

fn write(name: &str, bytes: &[u8]) -> PathBuf {
    let p = out_dir().join(name);
    std::fs::write(&p, bytes).unwrap();
    assert!(bytes.len() <= 64 << 20, "{name} is over 64 MiB");
    p
}

/// Runs every static command on `img`; each must end with a documented
/// exit code (0 ok, 1 findings, 2 usage/input error) and, when it fails,
/// say why on stderr. Returns the outputs by command.
fn every_command(img: &Path) -> Vec<(&'static str, std::process::Output)> {
    let i = img.to_str().unwrap();
    let out = img.with_extension("extract");
    let runs = [
        ("inspect", vec!["inspect", i]),
        ("ls", vec!["ls", i, "/"]),
        ("cat", vec!["cat", i, "/loader/loader.conf"]),
        ("check", vec!["check", "--json", i]),
        ("extract", vec!["extract", "-o", out.to_str().unwrap(), i]),
    ];
    runs.into_iter()
        .map(|(name, args)| {
            let o = bootproof(&args);
            let code = o.status.code();
            assert!(
                matches!(code, Some(0..=2)),
                "{name} on {}: exit {code:?} (a crash?)\n{}",
                img.display(),
                String::from_utf8_lossy(&o.stderr)
            );
            if code != Some(0) && name != "check" {
                assert!(
                    String::from_utf8_lossy(&o.stderr).contains("error"),
                    "{name} on {}: failed without saying why",
                    img.display()
                );
            }
            (name, o)
        })
        .collect()
}

fn stderr_of<'a>(
    runs: &'a [(&str, std::process::Output)],
    name: &str,
) -> std::borrow::Cow<'a, str> {
    let o = &runs.iter().find(|(n, _)| *n == name).unwrap().1;
    String::from_utf8_lossy(&o.stderr)
}

#[test]
fn exponential_glob_in_loader_conf() {
    // `*a*a…a*b` against entry names of `a`s: exponential for a naive
    // backtracking matcher, one stack frame per `*` for a recursive one.
    let pattern = format!("{}b", "*a".repeat(20_000));
    let entry = format!("title {}\nlinux /vmlinuz\n", "a".repeat(200));
    let img = write(
        "glob.img",
        &fat_volume(
            8 << 20,
            &base_files(&format!("default {pattern}\n"), &entry),
        ),
    );
    let runs = every_command(&img);
    let check: serde_json::Value =
        serde_json::from_slice(&runs.iter().find(|(n, _)| *n == "check").unwrap().1.stdout)
            .unwrap();
    assert!(check["findings"].is_array(), "{check}");
}

#[test]
fn gzip_bomb_initrd_listed_a_thousand_times() {
    let entry = format!(
        "title bomb\nlinux /vmlinuz\n{}",
        "initrd /bomb.img\n".repeat(1000)
    );
    let mut files = base_files("default hostile*\n", &entry);
    files.push(("bomb.img".into(), gzip_bomb()));
    let img = write("initrd-bomb.img", &fat_volume(16 << 20, &files));
    let runs = every_command(&img);
    // extract refuses the declared total before copying anything (the
    // kernel here is not a kernel, so it may stop there first).
    let e = stderr_of(&runs, "extract");
    assert!(e.contains("not a") || e.contains("initrds total"), "{e}");
    assert!(!img.with_extension("extract").join("initrd").exists());
}

#[test]
fn gzip_bomb_initrd_is_reported_by_check() {
    let entry = "title bomb\nlinux /vmlinuz\ninitrd /bomb.img\n";
    let mut files = base_files("default hostile*\n", entry);
    files.push(("bomb.img".into(), gzip_bomb()));
    let img = write("initrd-bomb-once.img", &fat_volume(16 << 20, &files));
    let runs = every_command(&img);
    let check: serde_json::Value =
        serde_json::from_slice(&runs.iter().find(|(n, _)| *n == "check").unwrap().1.stdout)
            .unwrap();
    // The listing streamed through the bomb and stopped at its limit; the
    // check finished with every rule judged (the memory it took is what
    // scripts/bench-hostile.py measures).
    let id = |id: &str| {
        check["findings"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["id"] == id)
            .unwrap()["outcome"]
            .clone()
    };
    assert_eq!(id("boot.kernel-files"), "pass", "{check}");
    assert!(check["summary"]["pass"].as_u64().unwrap() > 0);
}

/// A GPT whose 4096 entries all cover the same sectors: 8 million
/// overlapping pairs, each a diagnostic before the cap.
#[test]
fn gpt_with_4096_overlapping_entries() {
    let vol = fat_volume(4 << 20, &base_files("default x\n", "title x\n"));
    let img = write("gpt-overlaps.img", &gpt_disk(&vol, 4096));
    let runs = every_command(&img);
    let o = &runs.iter().find(|(n, _)| *n == "inspect").unwrap().1;
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(text.contains("overlap"), "{text}");
}

/// Protective MBR, primary GPT with `entries` entries all covering `vol`
/// (placed at 1 MiB), and the backup GPT at the end.
fn gpt_disk(vol: &[u8], entries: u32) -> Vec<u8> {
    let start_lba = 2048u64;
    let entry_lbas = u64::from(entries) * 128 / 512;
    let vol_lbas = vol.len() as u64 / 512;
    let total_lbas = start_lba + vol_lbas + entry_lbas + 1 + 2048;
    let mut disk = vec![0u8; (total_lbas * 512) as usize];
    // Protective MBR.
    disk[446 + 4] = 0xee;
    disk[446 + 8..446 + 12].copy_from_slice(&1u32.to_le_bytes());
    disk[446 + 12..446 + 16]
        .copy_from_slice(&((total_lbas - 1).min(u64::from(u32::MAX)) as u32).to_le_bytes());
    disk[510] = 0x55;
    disk[511] = 0xaa;
    disk[(start_lba * 512) as usize..][..vol.len()].copy_from_slice(vol);
    let mut array = Vec::with_capacity((entry_lbas * 512) as usize);
    for i in 0..entries {
        let mut e = [0u8; 128];
        // Microsoft basic data.
        e[..16].copy_from_slice(&[
            0xa2, 0xa0, 0xd0, 0xeb, 0xe5, 0xb9, 0x33, 0x44, 0x87, 0xc0, 0x68, 0xb6, 0xb7, 0x26,
            0x99, 0xc7,
        ]);
        e[16..20].copy_from_slice(&(i + 1).to_le_bytes());
        e[32..40].copy_from_slice(&start_lba.to_le_bytes());
        e[40..48].copy_from_slice(&(start_lba + vol_lbas - 1).to_le_bytes());
        array.extend_from_slice(&e);
    }
    let array_crc = crc32fast::hash(&array);
    let last_lba = total_lbas - 1;
    let header = |my: u64, alt: u64, entries_at: u64| {
        let mut h = [0u8; 92];
        h[..8].copy_from_slice(b"EFI PART");
        h[8..12].copy_from_slice(&0x0001_0000u32.to_le_bytes());
        h[12..16].copy_from_slice(&92u32.to_le_bytes());
        h[24..32].copy_from_slice(&my.to_le_bytes());
        h[32..40].copy_from_slice(&alt.to_le_bytes());
        h[40..48].copy_from_slice(&34u64.to_le_bytes());
        h[48..56].copy_from_slice(&(last_lba - entry_lbas - 1).to_le_bytes());
        h[56..72].copy_from_slice(&[7u8; 16]);
        h[72..80].copy_from_slice(&entries_at.to_le_bytes());
        h[80..84].copy_from_slice(&entries.to_le_bytes());
        h[84..88].copy_from_slice(&128u32.to_le_bytes());
        h[88..92].copy_from_slice(&array_crc.to_le_bytes());
        let crc = crc32fast::hash(&h);
        h[16..20].copy_from_slice(&crc.to_le_bytes());
        h
    };
    // Primary: header at LBA 1, entries from LBA 2 (they run into the
    // space before the volume, which starts at 1 MiB).
    assert!(2 + entry_lbas <= start_lba);
    disk[512..512 + 92].copy_from_slice(&header(1, last_lba, 2));
    disk[1024..1024 + array.len()].copy_from_slice(&array);
    let backup_entries = last_lba - entry_lbas;
    let at = (backup_entries * 512) as usize;
    disk[at..at + array.len()].copy_from_slice(&array);
    let at = (last_lba * 512) as usize;
    disk[at..at + 92].copy_from_slice(&header(last_lba, 1, backup_entries));
    disk
}

#[test]
fn control_characters_in_names_and_os_release() {
    let mut files = base_files(
        "default hostile*\n",
        "title \u{1b}]0;owned\u{7}\u{1b}[2J\nlinux /vmlinuz\n",
    );
    files.push((
        "etc/os-release".into(),
        b"PRETTY_NAME=\"\x1b[31mred\x1b]52;c;cGF5bG9hZA==\x07\"\nID=x\n".to_vec(),
    ));
    let img = write("control-chars.img", &fat_volume(8 << 20, &files));
    for (name, o) in every_command(&img) {
        if name == "check" {
            continue; // JSON: escaped by serde
        }
        for stream in [&o.stdout, &o.stderr] {
            assert!(
                !stream.windows(2).any(|w| w == b"\x1b]" || w == b"\x1b["),
                "{name}: a raw escape sequence reached the terminal"
            );
            assert!(!stream.contains(&0x07), "{name}: a raw bell");
        }
    }
}

/// A root whose `modules.dep` has a dependency cycle among the modules
/// verify loads for its agent (virtio_pci ↔ virtio_blk) and a module
/// depending on itself, with Debian's real arm64 kernel so verify gets as
/// far as resolving them (it stops at starting QEMU in the benchmark).
#[test]
fn module_dependency_cycle() {
    let boot = artifacts().join("arm64/root/boot");
    let kernel = std::fs::read_dir(&boot)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .find(|n| n.starts_with("vmlinuz-"))
        .unwrap();
    let version = kernel.trim_start_matches("vmlinuz-").to_string();
    let m = format!("lib/modules/{version}");
    let entry = format!(
        "title cycle\nversion {version}\nlinux /{kernel}\noptions root=/dev/vda console=ttyAMA0\n"
    );
    let mut files = base_files("default hostile*\n", &entry);
    files.push((kernel.clone(), std::fs::read(boot.join(&kernel)).unwrap()));
    files.push((
        "etc/os-release".into(),
        b"ID=debian\nPRETTY_NAME=\"cycle\"\n".to_vec(),
    ));
    files.push((
        format!("{m}/modules.dep"),
        b"kernel/virtio_pci.ko: kernel/virtio_blk.ko\nkernel/virtio_blk.ko: kernel/virtio_pci.ko\nkernel/virtio_rng.ko: kernel/virtio_rng.ko\n".to_vec(),
    ));
    for k in ["virtio_pci", "virtio_blk", "virtio_rng"] {
        files.push((format!("{m}/kernel/{k}.ko"), b"\x7fELF".to_vec()));
    }
    let img = write("module-cycle.img", &fat_volume(48 << 20, &files));
    every_command(&img);
    // The closure itself: the cycle is reported, not followed forever.
    let opened = bootproof_inspect::OpenedImage::open(&img, &Default::default()).unwrap();
    let closure = bootproof_runtime::image::image_closure(
        &opened,
        &version,
        &["virtio_pci", "virtio_rng"],
        "no module directory",
    );
    assert!(!closure.cycles.is_empty(), "{closure:?}");
}

/// A FAT file of 64 KiB whose cluster chain loops back after two clusters:
/// its declared size fits the volume, so only a loop check can tell; the
/// read is an error, not 64 KiB of the loop's bytes repeated.
#[test]
fn fat_file_whose_cluster_chain_loops() {
    let body: Vec<u8> = (0..64 * 1024u32).map(|i| (i % 251) as u8).collect();
    let mut vol = fat_volume(
        8 << 20,
        &[
            ("LOOP.BIN".to_string(), body.clone()),
            ("OK.BIN".to_string(), body.clone()),
        ],
    );
    let le16 = |b: &[u8], at: usize| usize::from(u16::from_le_bytes([b[at], b[at + 1]]));
    let (bps, reserved, fats, fat_sectors) = (
        le16(&vol, 11),
        le16(&vol, 14),
        usize::from(vol[16]),
        le16(&vol, 22),
    );
    assert!(fat_sectors > 0, "fatfs made FAT12/16 here");
    let root = (reserved + fats * fat_sectors) * bps;
    let entry = (0..16)
        .map(|i| root + i * 32)
        .find(|&e| &vol[e..e + 11] == b"LOOP    BIN")
        .expect("LOOP.BIN in the root directory");
    let first = le16(&vol, entry + 26);
    let fat12 = vol[54..62].starts_with(b"FAT12");
    assert!(!fat12, "a FAT16 volume");
    for copy in 0..fats {
        let at = (reserved + copy * fat_sectors) * bps + (first + 1) * 2;
        vol[at..at + 2].copy_from_slice(&(first as u16).to_le_bytes());
    }
    let img = write("fat-chain-loop.img", &vol);
    let i = img.to_str().unwrap();
    let bad = bootproof(&["cat", i, "/LOOP.BIN"]);
    assert_eq!(bad.status.code(), Some(2));
    let e = String::from_utf8_lossy(&bad.stderr);
    assert!(e.contains("cluster chain loops"), "{e}");
    assert!(
        bad.stdout.len() < body.len(),
        "{} bytes came out",
        bad.stdout.len()
    );
    // The other file, whose chain is intact, reads back byte for byte.
    let good = bootproof(&["cat", i, "/OK.BIN"]);
    assert_eq!(good.status.code(), Some(0));
    assert_eq!(good.stdout, body);
}
