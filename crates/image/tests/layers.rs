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
