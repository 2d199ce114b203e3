//! The image layer reads exactly what QEMU's own tools wrote.

use bootproof_image::{Image, ImageError, OpenOptions, ReadAt};
use bootproof_testkit::*;
use std::fs::File;
use std::os::unix::fs::FileExt;

/// Compares the whole virtual disk of `img` with `raw`, in 4 MiB steps,
/// allowing `(offset, len, byte)` regions to differ as specified.
fn assert_same_disk(img: &Image, raw: &std::path::Path, pattern: Option<(u64, u64, u8)>) {
    let raw = File::open(raw).unwrap();
    let size = raw.metadata().unwrap().len();
    assert_eq!(img.size(), size);
    let mut a = vec![0u8; 4 << 20];
    let mut b = vec![0u8; 4 << 20];
    let mut off = 0;
    while off < size {
        let n = (size - off).min(a.len() as u64) as usize;
        img.read_at(off, &mut a[..n]).unwrap();
        raw.read_exact_at(&mut b[..n], off).unwrap();
        if let Some((p, len, byte)) = pattern {
            for i in 0..n as u64 {
                if (p..p + len).contains(&(off + i)) {
                    b[i as usize] = byte;
                }
            }
        }
        assert!(
            a[..n] == b[..n],
            "virtual disk differs from raw within {off}..{}",
            off + n as u64
        );
        off += n as u64;
    }
}

#[test]
fn every_qcow2_variant_reads_as_the_raw_disk() {
    for name in [
        "gpt.qcow2",
        "gpt-deflate.qcow2",
        "gpt-zstd.qcow2",
        "gpt-v2.qcow2",
        "gpt-extl2.qcow2",
    ] {
        let img = Image::open(image(name), &OpenOptions::default()).unwrap();
        assert_eq!(img.format(), "qcow2");
        assert_same_disk(&img, &image("gpt.raw"), None);
    }
}

#[test]
fn backing_chain_reads_through_every_layer() {
    let m = manifest();
    let entry = m["images"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["name"] == "overlay2.qcow2")
        .unwrap()
        .clone();
    let p = &entry["pattern"];
    let pattern = (
        p["offset"].as_u64().unwrap(),
        p["length"].as_u64().unwrap(),
        p["byte"].as_u64().unwrap() as u8,
    );
    let img = Image::open(
        image("overlay2.qcow2"),
        &OpenOptions {
            allow_backing: true,
            ..Default::default()
        },
    )
    .unwrap();
    let chain: Vec<String> = img
        .chain()
        .iter()
        .map(|l| l.path.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(chain, ["overlay2.qcow2", "overlay.qcow2", "gpt-zstd.qcow2"]);
    assert_same_disk(&img, &image("gpt.raw"), Some(pattern));
}

#[test]
fn backing_is_refused_unless_allowed() {
    match Image::open(image("overlay.qcow2"), &OpenOptions::default()) {
        Err(ImageError::BackingNotAllowed { backing, .. }) => assert_eq!(backing, "gpt-zstd.qcow2"),
        Err(e) => panic!("unexpected error {e}"),
        Ok(_) => panic!("opened a backing chain without permission"),
    }
}

#[test]
fn raw_images_are_passed_through() {
    let img = Image::open(image("gpt.raw"), &OpenOptions::default()).unwrap();
    assert_eq!(img.format(), "raw");
    let mut buf = [0u8; 8];
    img.read_at(512, &mut buf).unwrap();
    assert_eq!(&buf, b"EFI PART");
    let mut past = [0u8; 2];
    assert!(
        img.read_at(img.size() - 1, &mut past).is_err(),
        "reads past the end fail, never short"
    );
}

/// Disks in containers, each made by the tool a publisher uses (`tar`,
/// `xz`, GNU `tar -z` with and without `-S`): the virtual disk is the
/// source disk byte for byte, the container is named, and QEMU's window
/// into an archive is the member's place in it.
#[test]
fn disks_in_containers_read_as_their_source() {
    let cache = scratch("layers", "unpack");
    let opts = OpenOptions {
        unpack_dir: Some(cache.to_path_buf()),
        ..Default::default()
    };
    for (name, format, kind, windowed) in [
        ("gpt.ova", "vmdk", "ova", true),
        ("gpt.raw.xz", "raw", "xz", false),
        ("gpt.tar.gz", "raw", "tar+gzip", true),
        ("gpt-sparse.tar.gz", "raw", "tar+gzip", false),
    ] {
        let img = Image::open(image(name), &opts).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(img.format(), format, "{name}");
        let container = img.chain()[0].container.clone().unwrap();
        assert_eq!(container.kind, kind, "{name}");
        assert_same_disk(&img, &image("gpt.raw"), None);
        let (host, window) = img.host_file();
        assert_eq!(window.is_some(), windowed, "{name}");
        if let Some((offset, len)) = window {
            // The window holds exactly the member's bytes.
            let mut head = vec![0u8; 512];
            File::open(host)
                .unwrap()
                .read_exact_at(&mut head, offset)
                .unwrap();
            let mut want = vec![0u8; 512];
            img.reader().read_at(0, &mut want).unwrap_or(());
            if format == "raw" {
                assert_eq!(head, want, "{name}: the window starts at the disk");
                assert_eq!(len, img.size());
            }
        }
    }
    // Without a cache directory, compressed images are refused by name.
    let err = Image::open(image("gpt.raw.xz"), &OpenOptions::default())
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("xz-compressed image"), "{err}");
}
