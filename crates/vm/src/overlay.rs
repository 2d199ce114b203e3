//! Per-VM writable state that never touches the input: a qcow2 overlay
//! backed by the image, and a copy of the firmware's variable store.

use std::fs::File;
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

const CLUSTER_BITS: u32 = 16;
const CLUSTER: u64 = 1 << CLUSTER_BITS;
const EXT_BACKING_FORMAT: u32 = 0xe279_2aca;

/// A VMDK descriptor (VMware's "Virtual Disk Format 1.1", as QEMU's vmdk
/// driver reads it) joining byte runs `(offset, size)` of the raw file
/// `file` into one disk, in order: flat extents, each at its offset.
/// Offsets and sizes must be whole sectors; the path may not hold a quote
/// or a line break (the descriptor quotes it).
pub fn flat_descriptor(file: &str, runs: &[(u64, u64)]) -> io::Result<String> {
    let invalid = |why: &str| io::Error::new(io::ErrorKind::InvalidInput, why.to_string());
    if file.contains(['"', '\n', '\r']) {
        return Err(invalid("the image's path holds a quote or a line break"));
    }
    let mut text = String::from(
        "# Disk DescriptorFile\nversion=1\nCID=fffffffe\nparentCID=ffffffff\n\
         createType=\"monolithicFlat\"\n\n# Extent description\n",
    );
    for &(offset, size) in runs {
        if !offset.is_multiple_of(512) || !size.is_multiple_of(512) || size == 0 {
            return Err(invalid("a run that is not whole sectors"));
        }
        // QEMU takes only RW extents; the node is opened read-only.
        text.push_str(&format!(
            "RW {} FLAT \"{file}\" {}\n",
            size / 512,
            offset / 512
        ));
    }
    text.push_str("\n# The Disk Data Base\nddb.virtualHWVersion = \"4\"\n");
    Ok(text)
}

/// Writes an empty qcow2 v3 overlay of `size` bytes at `path`, backed by
/// `backing` (format `backing_format`): every read falls through to the
/// input image, every write lands in the overlay.
///
/// Layout (QEMU docs/interop/qcow2.txt): cluster 0 header (+ backing-format
/// extension and backing file name), cluster 1 refcount table, cluster 2
/// one refcount block, cluster 3… the L1 table (all zero: nothing allocated).
pub fn create_overlay(
    path: &Path,
    backing: &Path,
    backing_format: &str,
    size: u64,
) -> io::Result<()> {
    let backing_name = backing
        .to_str()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "backing path is not UTF-8"))?;
    let l2_entries = CLUSTER / 8;
    let l1_entries = size.div_ceil(CLUSTER).div_ceil(l2_entries).max(1);
    let l1_clusters = (l1_entries * 8).div_ceil(CLUSTER);
    let total_clusters = 3 + l1_clusters;
    let refcount_table = CLUSTER;
    let refcount_block = 2 * CLUSTER;
    let l1_offset = 3 * CLUSTER;

    let mut h = vec![0u8; CLUSTER as usize];
    let be32 = |h: &mut [u8], at: usize, v: u32| h[at..at + 4].copy_from_slice(&v.to_be_bytes());
    let be64 = |h: &mut [u8], at: usize, v: u64| h[at..at + 8].copy_from_slice(&v.to_be_bytes());
    h[..4].copy_from_slice(b"QFI\xfb");
    be32(&mut h, 4, 3); // version
    be32(&mut h, 20, CLUSTER_BITS);
    be64(&mut h, 24, size);
    be32(&mut h, 32, 0); // no encryption
    be32(&mut h, 36, l1_entries as u32);
    be64(&mut h, 40, l1_offset);
    be64(&mut h, 48, refcount_table);
    be32(&mut h, 56, 1); // refcount table clusters
    be32(&mut h, 96, 4); // refcount_order: 16-bit refcounts
    be32(&mut h, 100, 104); // header length
                            // Header extensions at 104: backing format, then end.
    let mut at = 104;
    be32(&mut h, at, EXT_BACKING_FORMAT);
    be32(&mut h, at + 4, backing_format.len() as u32);
    h[at + 8..at + 8 + backing_format.len()].copy_from_slice(backing_format.as_bytes());
    at += 8 + backing_format.len().div_ceil(8) * 8;
    at += 8; // end-of-extensions marker (zeros)
    if at + backing_name.len() > CLUSTER as usize || backing_name.len() > 1023 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "backing path is too long for a qcow2 header",
        ));
    }
    h[at..at + backing_name.len()].copy_from_slice(backing_name.as_bytes());
    be64(&mut h, 8, at as u64);
    be32(&mut h, 16, backing_name.len() as u32);

    let mut table = vec![0u8; CLUSTER as usize];
    table[..8].copy_from_slice(&refcount_block.to_be_bytes());
    let mut block = vec![0u8; CLUSTER as usize];
    for c in 0..total_clusters as usize {
        block[c * 2..c * 2 + 2].copy_from_slice(&1u16.to_be_bytes());
    }
    let mut f = File::options().write(true).create_new(true).open(path)?;
    f.write_all(&h)?;
    f.write_all(&table)?;
    f.write_all(&block)?;
    f.write_all(&vec![0u8; (l1_clusters * CLUSTER) as usize])?;
    Ok(())
}

/// Copies a firmware variable-store template to a per-VM file. A raw
/// template is zero-padded to `pad_to` bytes when given (aarch64 `virt`
/// requires 64 MiB pflash units).
pub fn copy_nvram(template: &Path, dest: &Path, pad_to: Option<u64>) -> io::Result<()> {
    use std::io::{Read, Seek, SeekFrom};
    let mut src = File::open(template)?;
    let mut out = File::options()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(dest)?;
    // Sparse: all-zero blocks become holes. AAVMF's store is 64 MiB of
    // zeros until the firmware formats it, and it is copied for every VM.
    let mut buf = vec![0u8; 1 << 20];
    let zeros = vec![0u8; 1 << 20];
    let mut len = 0u64;
    loop {
        let n = src.read(&mut buf)?;
        if n == 0 {
            break;
        }
        if buf[..n] != zeros[..n] {
            out.seek(SeekFrom::Start(len))?;
            out.write_all(&buf[..n])?;
        }
        len += n as u64;
    }
    out.set_len(pad_to.map_or(len, |p| p.max(len)))?;
    Ok(())
}
