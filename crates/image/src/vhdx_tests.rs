//! A VHDX built field by field: what the spec lays out reads back, and
//! hostile fields are errors, not panics or huge allocations.

use super::*;
use crate::read_at::MemImage;

const META: usize = 320 * 1024;
const BAT: usize = 448 * 1024;

fn put32(v: &mut [u8], at: usize, x: u32) {
    v[at..at + 4].copy_from_slice(&x.to_le_bytes());
}
fn put64(v: &mut [u8], at: usize, x: u64) {
    v[at..at + 8].copy_from_slice(&x.to_le_bytes());
}
fn seal(v: &mut [u8], at: usize, len: usize) {
    put32(v, at + 4, 0);
    let sum = CASTAGNOLI.checksum(&v[at..at + len]);
    put32(v, at + 4, sum);
}

/// Knobs for the hostile variants.
struct Build {
    block_size: u32,
    virtual_size: u64,
    file_flags: u32,
    entry0: u64,
    extra_item: Option<(&'static str, u32)>,
}

impl Default for Build {
    fn default() -> Build {
        Build {
            block_size: 1 << 20,
            virtual_size: 2 << 20,
            file_flags: 0,
            entry0: 6 | (1 << 20),
            extra_item: None,
        }
    }
}

/// 2 MiB virtual, 1 MiB blocks: block 0 stored at 1 MiB (0x5a bytes),
/// block 1 not present.
fn build(b: &Build) -> Vec<u8> {
    let mut v = vec![0u8; 2 << 20];
    v[..8].copy_from_slice(b"vhdxfile");
    for (i, at) in HEADERS.iter().enumerate() {
        let at = *at as usize;
        v[at..at + 4].copy_from_slice(b"head");
        put64(&mut v, at + 8, i as u64 + 1);
        v[at + 66] = 1;
        seal(&mut v, at, HEADER_SIZE);
    }
    for at in REGION_TABLES {
        let at = at as usize;
        v[at..at + 4].copy_from_slice(b"regi");
        put32(&mut v, at + 8, 2);
        for (i, (id, place, len)) in [(BAT_REGION, BAT, 1 << 20), (METADATA_REGION, META, 1 << 20)]
            .into_iter()
            .enumerate()
        {
            let e = at + 16 + i * 32;
            v[e..e + 16].copy_from_slice(&guid(id));
            put64(&mut v, e + 16, place as u64);
            put32(&mut v, e + 24, len);
            put32(&mut v, e + 28, 1);
        }
        seal(&mut v, at, TABLE_SIZE);
    }
    v[META..META + 8].copy_from_slice(b"metadata");
    let mut items = vec![
        (FILE_PARAMETERS, 4u32),
        (VIRTUAL_DISK_SIZE, 4),
        (LOGICAL_SECTOR_SIZE, 4),
    ];
    items.extend(b.extra_item);
    v[META + 10] = items.len() as u8;
    for (i, (id, flags)) in items.iter().enumerate() {
        let e = META + 32 + i * 32;
        v[e..e + 16].copy_from_slice(&guid(id));
        put32(&mut v, e + 16, 65536 + i as u32 * 16);
        put32(&mut v, e + 20, 8);
        put32(&mut v, e + 24, *flags);
    }
    let data = META + 65536;
    put32(&mut v, data, b.block_size);
    put32(&mut v, data + 4, b.file_flags);
    put64(&mut v, data + 16, b.virtual_size);
    put32(&mut v, data + 32, 512);
    put64(&mut v, BAT, b.entry0);
    v[1 << 20..].fill(0x5a);
    v
}

fn open(bytes: Vec<u8>) -> Result<VhdxReader, ImageError> {
    VhdxReader::open(Arc::new(MemImage(bytes)), Path::new("t.vhdx"))
}

#[test]
fn stored_blocks_read_and_missing_ones_are_zeros() {
    let r = open(build(&Build::default())).unwrap();
    assert_eq!(
        (r.size(), r.kind(), r.block_size()),
        (2 << 20, "dynamic", 1 << 20)
    );
    let mut buf = vec![0u8; 2 << 20];
    r.read_at(0, &mut buf).unwrap();
    assert!(buf[..1 << 20].iter().all(|b| *b == 0x5a));
    assert!(buf[1 << 20..].iter().all(|b| *b == 0));
    let fixed = Build {
        file_flags: 1,
        ..Build::default()
    };
    assert_eq!(open(build(&fixed)).unwrap().kind(), "fixed");
}

#[test]
fn the_valid_header_with_the_higher_sequence_wins() {
    // The second header (sequence 2) damaged: the first still opens.
    let mut v = build(&Build::default());
    v[HEADERS[1] as usize + 100] ^= 1;
    assert!(open(v).is_ok());
    // Both damaged: corrupt.
    let mut v = build(&Build::default());
    for at in HEADERS {
        v[at as usize + 100] ^= 1;
    }
    assert!(matches!(open(v), Err(ImageError::Corrupt { .. })));
}

#[test]
fn hostile_fields_are_errors_not_panics() {
    let corrupt_or_unsupported = |v: Vec<u8>, what: &str| {
        assert!(open(v).is_err(), "{what}");
    };
    // An active log.
    let mut v = build(&Build::default());
    for at in HEADERS {
        v[at as usize + 48] = 1;
        seal(&mut v, at as usize, HEADER_SIZE);
    }
    assert!(matches!(open(v), Err(ImageError::Unsupported { .. })));
    for (b, what) in [
        (
            Build {
                block_size: 3 << 20,
                ..Build::default()
            },
            "block size not a power of two",
        ),
        (
            Build {
                block_size: 4096,
                ..Build::default()
            },
            "block size under 1 MiB",
        ),
        (
            Build {
                virtual_size: 1 << 50,
                ..Build::default()
            },
            "a BAT larger than its region",
        ),
        (
            Build {
                virtual_size: u64::MAX,
                ..Build::default()
            },
            "an absurd size",
        ),
        (
            Build {
                file_flags: 2,
                ..Build::default()
            },
            "a parent",
        ),
        (
            Build {
                extra_item: Some((PARENT_LOCATOR, 4)),
                ..Build::default()
            },
            "a parent locator",
        ),
        (
            Build {
                extra_item: Some(("00000000-1111-2222-3333-444444444444", 4)),
                ..Build::default()
            },
            "an unknown required item",
        ),
    ] {
        corrupt_or_unsupported(build(&b), what);
    }
    // An unknown item that is not required, or a user item, is ignored.
    let b = Build {
        extra_item: Some(("00000000-1111-2222-3333-444444444444", 1)),
        ..Build::default()
    };
    assert!(open(build(&b)).is_ok());
    // BAT entries past the end of the file, or in a differencing state.
    let mut buf = [0u8; 16];
    for entry in [6 | (1 << 40), 6 | (u64::MAX << 20), 7 | (1 << 20), 5] {
        let r = open(build(&Build {
            entry0: entry,
            ..Build::default()
        }))
        .unwrap();
        assert!(r.read_at(0, &mut buf).is_err(), "entry {entry:#x}");
    }
    // A region table claiming more entries than fit.
    let mut v = build(&Build::default());
    for at in REGION_TABLES {
        put32(&mut v, at as usize + 8, 5000);
        seal(&mut v, at as usize, TABLE_SIZE);
    }
    corrupt_or_unsupported(v, "5000 region entries");
    // Truncated before the region tables.
    corrupt_or_unsupported(build(&Build::default())[..200 * 1024].to_vec(), "truncated");
}
