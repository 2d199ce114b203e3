//! Crafted sparse files and descriptors: what real writers produce reads
//! back, and hostile fields are errors, not panics or huge allocations.

use super::*;
use crate::read_at::MemImage;
use std::io::Write;

const GRAIN: u64 = 8; // sectors: 4 KiB grains keep the files small

/// A sparse header sector.
fn header(capacity: u64, gd: u64, flags: u32, compress: u16) -> [u8; 512] {
    let mut h = [0u8; 512];
    h[..4].copy_from_slice(b"KDMV");
    h[4..8].copy_from_slice(&3u32.to_le_bytes());
    h[8..12].copy_from_slice(&flags.to_le_bytes());
    h[12..20].copy_from_slice(&capacity.to_le_bytes());
    h[20..28].copy_from_slice(&GRAIN.to_le_bytes());
    h[44..48].copy_from_slice(&512u32.to_le_bytes());
    h[56..64].copy_from_slice(&gd.to_le_bytes());
    h[77..79].copy_from_slice(&compress.to_le_bytes());
    h
}

/// A 16-sector (two-grain) sparse disk: directory at sector 1, its one
/// table at sector 2 (four sectors), grain 0 at sector 6 holding 0xab,
/// grain 1 not stored.
fn sparse(grain0: u32) -> Vec<u8> {
    let mut v = header(16, 1, 0, 0).to_vec();
    let mut gd = [0u8; 512];
    gd[..4].copy_from_slice(&2u32.to_le_bytes());
    v.extend_from_slice(&gd);
    let mut gt = [0u8; 2048];
    gt[..4].copy_from_slice(&grain0.to_le_bytes());
    v.extend_from_slice(&gt);
    v.extend(std::iter::repeat_n(0xabu8, 4096));
    v
}

/// The same disk as a stream: grain 0 compressed behind its marker, the
/// directory at the end, the real header in the footer.
fn stream(marker_lba: u64) -> Vec<u8> {
    let mut v = header(16, u64::MAX, 1 << 16 | 1 << 17, 1).to_vec();
    let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    z.write_all(&[0xab; 4096]).unwrap();
    let packed = z.finish().unwrap();
    let mut grain = marker_lba.to_le_bytes().to_vec();
    grain.extend_from_slice(&(packed.len() as u32).to_le_bytes());
    grain.extend_from_slice(&packed);
    grain.resize(grain.len().div_ceil(512) * 512, 0);
    v.extend_from_slice(&grain); // sector 1
    let gt_at = v.len() as u32 / 512;
    let mut gt = [0u8; 2048];
    gt[..4].copy_from_slice(&1u32.to_le_bytes());
    v.extend_from_slice(&gt);
    let gd_at = v.len() as u64 / 512;
    let mut gd = [0u8; 512];
    gd[..4].copy_from_slice(&gt_at.to_le_bytes());
    v.extend_from_slice(&gd);
    let mut marker = [0u8; 512];
    marker[0..8].copy_from_slice(&1u64.to_le_bytes());
    marker[12..16].copy_from_slice(&3u32.to_le_bytes());
    v.extend_from_slice(&marker);
    v.extend_from_slice(&header(16, gd_at, 1 << 16 | 1 << 17, 1));
    v.extend_from_slice(&[0u8; 512]);
    v
}

fn open(bytes: Vec<u8>) -> Result<(Arc<dyn ReadAt>, VmdkInfo), ImageError> {
    open_sparse(Arc::new(MemImage(bytes)), Path::new("t.vmdk"))
}

fn whole(r: &dyn ReadAt) -> Vec<u8> {
    let mut buf = vec![0u8; r.size() as usize];
    r.read_at(0, &mut buf).unwrap();
    buf
}

#[test]
fn stored_grains_read_and_missing_ones_are_zeros() {
    for (bytes, kind) in [
        (sparse(6), "monolithicSparse"),
        (stream(0), "streamOptimized"),
    ] {
        let (r, info) = open(bytes).unwrap();
        assert_eq!(info.create_type, kind);
        assert_eq!(info.grain_bytes, Some(4096));
        let disk = whole(&*r);
        assert_eq!(disk.len(), 8192);
        assert!(disk[..4096].iter().all(|b| *b == 0xab), "{kind}: grain 0");
        assert!(disk[4096..].iter().all(|b| *b == 0), "{kind}: grain 1");
        let mut across = [0u8; 4];
        r.read_at(4094, &mut across).unwrap();
        assert_eq!(across, [0xab, 0xab, 0, 0]);
    }
}

#[test]
fn hostile_sparse_fields_are_errors_not_panics() {
    let mut buf = [0u8; 16];
    // A grain past the end of the file.
    let (r, _) = open(sparse(1 << 20)).unwrap();
    assert!(r.read_at(0, &mut buf).is_err());
    // A marker naming another grain.
    let (r, _) = open(stream(8)).unwrap();
    assert!(r.read_at(0, &mut buf).is_err());
    // A capacity whose directory would not fit the file (no allocation
    // sized by the field), and one that overflows bytes.
    let mut v = sparse(6);
    v[12..20].copy_from_slice(&(1u64 << 40).to_le_bytes());
    assert!(matches!(open(v), Err(ImageError::Corrupt { .. })));
    let mut v = sparse(6);
    v[12..20].copy_from_slice(&u64::MAX.to_le_bytes());
    assert!(open(v).is_err());
    // Grain sizes that are not a power of two, or absurd; table sizes.
    for (at, value) in [(20, 3u64), (20, 0), (20, 1 << 20)] {
        let mut v = sparse(6);
        v[at..at + 8].copy_from_slice(&value.to_le_bytes());
        assert!(open(v).is_err(), "grain {value}");
    }
    let mut v = sparse(6);
    v[44..48].copy_from_slice(&4096u32.to_le_bytes());
    assert!(open(v).is_err());
    // A stream cut short of its footer; an unknown version.
    let mut v = stream(0);
    v.truncate(v.len() - 512);
    assert!(open(v).is_err());
    let mut v = sparse(6);
    v[4..8].copy_from_slice(&9u32.to_le_bytes());
    assert!(matches!(open(v), Err(ImageError::Unsupported { .. })));
    // A grain that does not inflate.
    let mut v = stream(0);
    v[512 + 12..512 + 20].fill(0xff);
    let (r, _) = open(v).unwrap();
    assert!(r.read_at(0, &mut buf).is_err());
}

fn descriptor(text: &str) -> Result<(Arc<dyn ReadAt>, VmdkInfo), ImageError> {
    let mut files = |name: &str| -> Result<Arc<dyn ReadAt>, ImageError> {
        match name {
            "flat.img" => Ok(Arc::new(MemImage((0..=255u8).cycle().take(4096).collect()))),
            "s001.vmdk" => Ok(Arc::new(MemImage(sparse(6)))),
            other => Err(corrupt(Path::new(other), "no such extent")),
        }
    };
    open_descriptor(
        &MemImage(text.as_bytes().to_vec()),
        Path::new("d.vmdk"),
        &mut files,
    )
}

#[test]
fn descriptor_extents_read_end_to_end() {
    let (r, info) = descriptor(
        "# Disk DescriptorFile\nversion=1\ncreateType=\"twoGbMaxExtentSparse\"\n\
         RW 4 FLAT \"flat.img\" 2\nRDONLY 16 SPARSE \"s001.vmdk\"\nRW 2 ZERO\n",
    )
    .unwrap();
    assert_eq!(info.create_type, "twoGbMaxExtentSparse");
    let disk = whole(&*r);
    assert_eq!(disk.len(), (4 + 16 + 2) * 512);
    let flat: Vec<u8> = (0..=255u8).cycle().take(4096).collect();
    assert_eq!(
        &disk[..2048],
        &flat[1024..3072],
        "flat extent from its offset"
    );
    assert!(disk[2048..2048 + 4096].iter().all(|b| *b == 0xab));
    assert!(disk[2048 + 4096..].iter().all(|b| *b == 0));
}

#[test]
fn hostile_descriptors_are_errors() {
    for text in [
        "# Disk DescriptorFile\n",      // no extents
        "RW 4 FLAT \"flat.img\" 7\n",   // past the file's end
        "RW 99999999999999999 ZERO\n",  // overflows bytes
        "RW 4 FLAT \"flat.img\n",       // unterminated name
        "RW x FLAT \"flat.img\" 0\n",   // not a number
        "RW 4 VMFSSPARSE \"s.vmdk\"\n", // ESX's own
        "RW 4 FLAT \"missing\" 0\n",    // the opener refuses
        "parentFileNameHint=\"base.vmdk\"\nRW 4 FLAT \"flat.img\" 0\n", // a delta disk
        "RW 16 SPARSE \"flat.img\"\n",  // not a sparse file
    ] {
        assert!(descriptor(text).is_err(), "{text}");
    }
    let many = "RW 1 ZERO\n".repeat(MAX_EXTENTS + 1);
    assert!(descriptor(&many).is_err());
}
