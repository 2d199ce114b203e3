//! Every file of the source tree, read back through bootproof from every
//! filesystem and image format (raw, qcow2 in every variant, VHD fixed and
//! dynamic), equals the source byte for byte.

mod common;

use bootproof_image::OpenOptions;
use bootproof_inspect::{OpenedImage, PartSelector};
use common::*;

fn check_image(name: &str) {
    let opts = OpenOptions {
        allow_backing: true,
        ..Default::default()
    };
    let img = OpenedImage::open(image(name), &opts).unwrap();
    let slots = slots(name);
    let slots = slots.as_object().unwrap();
    assert!(!slots.is_empty());
    for (number, spec) in slots {
        let number: u32 = number.parse().unwrap();
        let (slot, vol) = img
            .volume(&PartSelector::Number(number))
            .unwrap_or_else(|e| panic!("{name} slot {number}: {e}"));
        assert_eq!(
            slot.kind.name(),
            spec["fs"].as_str().unwrap(),
            "{name} slot {number} type"
        );
        assert_eq!(
            slot.label.as_deref(),
            spec["label"].as_str(),
            "{name} slot {number} label"
        );
        let strings = |k: &str| -> Vec<String> {
            spec[k]
                .as_array()
                .map(|a| a.iter().map(|s| s.as_str().unwrap().to_string()).collect())
                .unwrap_or_default()
        };
        let tree = images().join(spec["tree"].as_str().unwrap());
        let prefix = spec["prefix"].as_str().unwrap_or("");
        let mut extra = strings("extra");
        if slot.kind.name().starts_with("ext") {
            extra.push("lost+found".into()); // made by mke2fs, not in the tree
        }
        let cov = compare_tree(vol, prefix, &tree, &strings("skip"), &extra);
        eprintln!("{name} slot {number} ({}): {cov:?}", slot.kind);
        let catted = cat_every_file(name, number, prefix, &tree, &strings("skip"));
        assert_eq!(
            catted, cov.files,
            "{name} slot {number}: files through the CLI"
        );
        assert!(
            cov.files >= 2 && cov.dirs >= 2,
            "{name} slot {number}: comparison too small: {cov:?}"
        );
        if spec["tree"] == "tree" && spec["fs"] != "vfat" {
            assert!(
                cov.files > 5000 && cov.symlinks >= 9,
                "{name} slot {number}: {cov:?}"
            );
        }
    }
}

/// Runs the real `bootproof cat` over every regular file of the tree (in
/// batches of several targets) and compares its output with the source
/// bytes. Returns how many files it compared.
fn cat_every_file(
    name: &str,
    number: u32,
    prefix: &str,
    tree: &std::path::Path,
    skip: &[String],
) -> usize {
    let mut files = Vec::new();
    let mut stack = vec![tree.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            let rel = p.strip_prefix(tree).unwrap().to_str().unwrap().to_string();
            if skip.contains(&rel) {
                continue;
            }
            let meta = std::fs::symlink_metadata(&p).unwrap();
            if meta.is_dir() {
                stack.push(p);
            } else if meta.is_file() {
                files.push(rel);
            }
        }
    }
    files.sort();
    let img = image(name);
    for batch in files.chunks(1000) {
        let mut args = vec![
            "cat".to_string(),
            "--allow-backing".into(),
            img.to_str().unwrap().into(),
        ];
        args.extend(batch.iter().map(|f| format!("{number}:{prefix}/{f}")));
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_bootproof"))
            .args(&args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let want: Vec<u8> = batch
            .iter()
            .flat_map(|f| std::fs::read(tree.join(f)).unwrap())
            .collect();
        assert!(
            out.stdout == want,
            "{name} slot {number}: `bootproof cat` output differs from the source files"
        );
    }
    files.len()
}

#[test]
fn gpt_raw() {
    check_image("gpt.raw");
}
#[test]
fn gpt_vhd_fixed() {
    check_image("gpt-fixed.vhd");
}
#[test]
fn gpt_vhd_dynamic() {
    check_image("gpt-dynamic.vhd");
}

/// LVM2 logical volumes (one linear across two PVs, one striped), from
/// metadata the lvm2 tools wrote: every file byte for byte.
#[test]
fn lvm_logical_volumes() {
    check_image("lvm.raw");
}
#[test]
fn gpt_vhdx_dynamic() {
    check_image("gpt-dynamic.vhdx");
}
#[test]
fn gpt_vhdx_fixed() {
    check_image("gpt-fixed.vhdx");
}
#[test]
fn gpt_vmdk_monolithic_sparse() {
    check_image("gpt-sparse.vmdk");
}
#[test]
fn gpt_vmdk_stream_optimized() {
    check_image("gpt-stream.vmdk");
}
#[test]
fn gpt_vmdk_monolithic_flat() {
    check_image("gpt-flat.vmdk");
}
#[test]
fn gpt_vmdk_two_gb_extent_sparse() {
    check_image("gpt-2gb.vmdk");
}

/// Every byte of each VHD's, VHDX's and VMDK's virtual disk, as bootproof reads
/// it, equals what `qemu-img convert -O raw` writes (an independent
/// reader), and the size is the one QEMU gives the guest.
#[test]
fn converted_disks_read_as_qemu_reads_them() {
    use bootproof_image::{Image, ReadAt};
    use std::io::Read;
    for (name, format, subformat) in [
        ("gpt-fixed.vhd", "vpc", "fixed"),
        ("gpt-dynamic.vhd", "vpc", "dynamic"),
        ("gpt-dynamic.vhdx", "vhdx", "dynamic"),
        ("gpt-fixed.vhdx", "vhdx", "fixed"),
        ("gpt-sparse.vmdk", "vmdk", "monolithicSparse"),
        ("gpt-stream.vmdk", "vmdk", "streamOptimized"),
        ("gpt-flat.vmdk", "vmdk", "monolithicFlat"),
        ("gpt-2gb.vmdk", "vmdk", "twoGbMaxExtentSparse"),
    ] {
        let dir = scratch("read-back", name);
        let raw = dir.join("disk.raw");
        ok(std::process::Command::new("qemu-img")
            .args(["convert", "-f", format, "-O", "raw"])
            .arg(image(name))
            .arg(&raw));
        let img = Image::open(image(name), &OpenOptions::default()).unwrap();
        assert_eq!(img.format(), format, "{name}");
        assert_eq!(
            img.chain()[0].subformat.as_deref(),
            Some(subformat),
            "{name}"
        );
        let mut qemu = std::fs::File::open(&raw).unwrap();
        assert_eq!(img.size(), qemu.metadata().unwrap().len(), "{name}: size");
        let (mut ours, mut theirs) = (vec![0u8; 4 << 20], vec![0u8; 4 << 20]);
        let mut at = 0u64;
        while at < img.size() {
            let n = (img.size() - at).min(ours.len() as u64) as usize;
            img.read_at(at, &mut ours[..n]).unwrap();
            qemu.read_exact(&mut theirs[..n]).unwrap();
            assert!(
                ours[..n] == theirs[..n],
                "{name}: bytes differ in the 4 MiB at {at}"
            );
            at += n as u64;
        }
    }
}

#[test]
fn gpt_qcow2() {
    check_image("gpt.qcow2");
}
#[test]
fn gpt_qcow2_deflate_compressed() {
    check_image("gpt-deflate.qcow2");
}
#[test]
fn gpt_qcow2_zstd_compressed() {
    check_image("gpt-zstd.qcow2");
}
#[test]
fn gpt_qcow2_v2() {
    check_image("gpt-v2.qcow2");
}
#[test]
fn gpt_qcow2_extended_l2() {
    check_image("gpt-extl2.qcow2");
}
#[test]
fn backing_chain_of_three() {
    check_image("overlay2.qcow2");
}
#[test]
fn mbr_with_logical_partitions() {
    check_image("mbr.raw");
}
#[test]
fn gpt_4096_byte_sectors() {
    check_image("gpt4k.raw");
}
#[test]
fn bare_ext4() {
    check_image("bare.ext4");
}
#[test]
fn bare_fat12() {
    check_image("floppy.fat12");
}
#[test]
fn bare_xfs_v4() {
    check_image("bare-v4.xfs");
}
#[test]
fn btrfs_opensuse_layout() {
    check_image("bare-suse.btrfs");
}
#[test]
fn iso9660_and_el_torito() {
    check_image("tree.iso");
}

/// The fixtures really contain what the read-back tests claim to cover:
/// every XFS directory form and extent B+trees (per xfs_db), and hashed
/// (htree) ext4 directories (per debugfs).
#[test]
fn fixtures_cover_every_directory_form() {
    use std::process::Command;
    let xfs = image("bare-v4.xfs");
    let field = |path: &str, f: &str| -> String {
        let out = Command::new("xfs_db")
            .args(["-r", "-c", &format!("path {path}"), "-c", &format!("p {f}")])
            .arg(&xfs)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    // Shortform: small directories (dir-small's long names overflow a
    // 256-byte v4 inode, so it is a one-block directory instead).
    assert!(field("/etc", "core.format").contains("local"), "shortform");
    assert!(field("/EFI", "core.format").contains("local"), "shortform");
    assert!(field("/dir-block", "core.format").contains("extents"));
    assert_eq!(
        field("/dir-block", "core.nextents"),
        "core.nextents = 1",
        "block form: one directory block"
    );
    assert!(field("/dir-leaf", "core.format").contains("extents"));
    assert_eq!(
        field("/dir-leaf", "core.size"),
        "core.size = 16384",
        "leaf form: data blocks plus a leaf block"
    );
    assert!(
        field("/dir-node", "core.format").contains("btree"),
        "node form with an extent B+tree"
    );
    let ext4 = image("bare.ext4");
    for dir in ["/dir-leaf", "/dir-node"] {
        let out = Command::new("debugfs")
            .args(["-R", &format!("htree {dir}")])
            .arg(&ext4)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            text.contains("Root node dump"),
            "{dir} is an htree: {text:.200}"
        );
    }
}
