//! Symlinks resolve inside the image only, with loop and depth limits.

use bootproof_fs::{FileType, FsError};
use bootproof_image::OpenOptions;
use bootproof_inspect::{OpenedImage, PartSelector};
use bootproof_testkit::*;

/// (image, slot, prefix) for every filesystem that stores symlinks.
const CASES: &[(&str, u32, &str)] = &[
    ("gpt.raw", 2, ""),      // ext4
    ("gpt.raw", 3, ""),      // XFS v5
    ("bare-v4.xfs", 0, ""),  // XFS v4
    ("gpt.raw", 4, ""),      // Btrfs
    ("gpt.raw", 5, "/root"), // Btrfs, inside a subvolume
    ("tree.iso", 0, ""),     // ISO9660 Rock Ridge
];

#[test]
fn symlink_semantics_on_every_filesystem() {
    let hello = std::fs::read(images().join("tree/hello.txt")).unwrap();
    for &(name, number, prefix) in CASES {
        let img = OpenedImage::open(image(name), &OpenOptions::default()).unwrap();
        let (_, v) = img.volume(&PartSelector::Number(number)).unwrap();
        let p = |s: &str| format!("{prefix}{s}").into_bytes();
        let ctx = format!("{name} slot {number}");
        // Absolute targets restart at the root of *this* filesystem.
        if prefix.is_empty() {
            assert_eq!(v.read(&p("/link-abs")).unwrap(), hello, "{ctx}");
            assert_eq!(
                v.read(&p("/link-long")).unwrap(),
                b"at the bottom\n",
                "{ctx}"
            );
        } else {
            // In a subvolume, "/hello.txt" is outside the tree it was written in.
            assert!(v.read(&p("/link-abs")).is_err(), "{ctx}");
        }
        assert_eq!(v.read(&p("/dir-small/link-rel")).unwrap(), hello, "{ctx}");
        assert_eq!(
            v.metadata(&p("/link-dir")).unwrap().file_type,
            FileType::Dir,
            "{ctx}"
        );
        assert_eq!(
            v.symlink_metadata(&p("/link-dir")).unwrap().file_type,
            FileType::Symlink,
            "{ctx}"
        );
        assert_eq!(
            v.metadata(&p("/link-dir/level02")).unwrap().file_type,
            FileType::Dir,
            "{ctx}"
        );
        // ".." after a symlink applies to the target (POSIX, not lexical).
        assert!(
            v.exists(&p("/link-dir/../level01/level02")).unwrap(),
            "{ctx}"
        );
        assert!(
            matches!(v.read(&p("/link-dangling")), Err(FsError::NotFound(_))),
            "{ctx}"
        );
        assert!(
            matches!(v.read(&p("/loop-a")), Err(FsError::SymlinkLoop(_))),
            "{ctx}"
        );
        assert!(
            matches!(v.read(&p("/link-self")), Err(FsError::SymlinkLoop(_))),
            "{ctx}"
        );
        // A relative escape stops at the image root: the host's
        // /etc/hostname is never read.
        assert!(
            matches!(
                v.read(&p("/dir-small/link-escape")),
                Err(FsError::NotFound(_))
            ),
            "{ctx}"
        );
        // ".." never climbs above the root.
        assert_eq!(
            v.read(
                b"/../../../.."
                    .iter()
                    .chain(p("/hello.txt").iter())
                    .copied()
                    .collect::<Vec<_>>()
                    .as_slice()
            )
            .unwrap(),
            hello,
            "{ctx}"
        );
        // read_link does not follow; metadata of a file through a dir symlink does.
        assert_eq!(
            v.read_link(&p("/link-dir")).unwrap(),
            b"deep/level00/level01",
            "{ctx}"
        );
        assert!(
            matches!(v.read_link(&p("/hello.txt")), Err(FsError::NotASymlink(_))),
            "{ctx}"
        );
        assert!(
            matches!(v.read_dir(&p("/hello.txt")), Err(FsError::NotADirectory(_))),
            "{ctx}"
        );
        assert!(
            matches!(v.read(&p("/hello.txt/x")), Err(FsError::NotADirectory(_))),
            "{ctx}"
        );
        assert!(
            matches!(v.open(&p("/etc")), Err(FsError::IsADirectory(_))),
            "{ctx}"
        );
        // Canonical paths name the real location.
        assert_eq!(
            v.canonicalize(&p("/boot/vmlinuz")).unwrap().to_string(),
            format!("{prefix}/boot/vmlinuz-6.1.0-test"),
            "{ctx}"
        );
    }
}

#[test]
fn read_limit_refuses_before_allocating() {
    let img = OpenedImage::open(image("bare.ext4"), &OpenOptions::default()).unwrap();
    let (_, v) = img.volume(&PartSelector::Number(0)).unwrap();
    match v.read_limited(b"/big.bin", 1024) {
        Err(FsError::TooLarge {
            size, limit: 1024, ..
        }) => assert_eq!(size, 12 * 1024 * 1024 + 12345),
        other => panic!("expected TooLarge, got {other:?}"),
    }
}
