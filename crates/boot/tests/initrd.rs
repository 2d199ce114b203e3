//! Initramfs listing on archives made by cpio and the real compressors:
//! an uncompressed early (microcode) archive followed by a compressed main one.

use bootproof_boot::decompress::Compression;
use bootproof_boot::initrd;
use std::path::Path;
use std::process::{Command, Stdio};

fn cpio_of(dir: &Path) -> Vec<u8> {
    let files = Command::new("find")
        .arg(".")
        .current_dir(dir)
        .output()
        .unwrap()
        .stdout;
    let mut child = Command::new("cpio")
        .args(["-o", "-H", "newc", "--quiet"])
        .current_dir(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(child.stdin.as_mut().unwrap(), &files).unwrap();
    drop(child.stdin.take());
    child.wait_with_output().unwrap().stdout
}

#[test]
fn early_and_main_archives_are_listed() {
    let dir = std::env::temp_dir().join(format!("bootproof-initrd-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let early = dir.join("early");
    std::fs::create_dir_all(early.join("kernel/x86/microcode")).unwrap();
    std::fs::write(
        early.join("kernel/x86/microcode/GenuineIntel.bin"),
        vec![7u8; 5000],
    )
    .unwrap();
    let main = dir.join("main");
    let kver = "6.1.0-test-arm64";
    let mdir = main.join(format!("lib/modules/{kver}/kernel/drivers/block"));
    std::fs::create_dir_all(&mdir).unwrap();
    std::fs::write(mdir.join("virtio_blk.ko"), b"\x7fELF module").unwrap();
    std::fs::write(mdir.join("nbd.ko.xz"), b"xz module").unwrap();
    std::fs::create_dir_all(
        main.join("usr/lib/modules")
            .join(kver)
            .join("kernel/fs/ext4"),
    )
    .unwrap();
    std::fs::write(
        main.join("usr/lib/modules")
            .join(kver)
            .join("kernel/fs/ext4/ext4.ko.zst"),
        b"zst module",
    )
    .unwrap();
    std::fs::write(main.join("init"), b"#!/bin/sh\n").unwrap();
    let early_cpio = cpio_of(&early);
    let main_cpio = cpio_of(&main);
    let tools: &[(&[&str], Compression)] = &[
        (&["gzip", "-c"], Compression::Gzip),
        (&["zstd", "-c", "-q"], Compression::Zstd),
        (&["xz", "--check=crc32", "-c"], Compression::Xz),
        (&["lz4", "-l", "-c", "-q"], Compression::Lz4),
        (&["bzip2", "-c"], Compression::Bzip2),
        (&["lzma", "-c"], Compression::Lzma),
    ];
    for (tool, c) in tools {
        let mut image = early_cpio.clone();
        // dracut/initramfs-tools pad the early archive before the main one.
        image.resize(image.len().div_ceil(512) * 512, 0);
        image.extend(bootproof_testkit::pipe(tool, &main_cpio));
        let info = initrd::inspect(&image).unwrap_or_else(|e| panic!("{tool:?}: {e}"));
        assert_eq!(info.segments.len(), 2, "{tool:?}: {:?}", info.segments);
        assert_eq!(info.segments[0].compression, None);
        assert_eq!(info.segments[1].compression, Some(*c));
        assert!(info.has_init, "{tool:?}");
        assert!(info
            .paths
            .iter()
            .any(|p| p == "kernel/x86/microcode/GenuineIntel.bin"));
        let modules: Vec<&str> = info.modules.iter().map(String::as_str).collect();
        assert_eq!(modules, ["ext4", "nbd", "virtio_blk"], "{tool:?}");
        assert_eq!(info.module_versions.iter().collect::<Vec<_>>(), [kver]);
        // Truncated: an error, never a panic.
        assert!(
            initrd::inspect(&image[..image.len() - 40]).is_err(),
            "{tool:?}"
        );
    }
    assert!(initrd::inspect(b"not an initramfs").is_err());
    std::fs::remove_dir_all(&dir).unwrap();
}
