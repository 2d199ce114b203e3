//! File data: EXTENT_DATA items (inline, regular, preallocated) and the
//! three compression formats Btrfs writes.

use super::superblock::{le32, le64};
use super::tree::{Key, Reader, Tree};
use super::{corrupt, EXTENT_DATA};
use crate::error::FsError;
use crate::FsKind;
use std::io::Read;
use std::sync::{Arc, Mutex};

/// BTRFS_MAX_UNCOMPRESSED: a compressed extent holds at most 128 KiB.
const MAX_UNCOMPRESSED: u64 = 128 * 1024;
/// Most extents accepted for one file.
const MAX_EXTENTS: usize = 4 << 20;

#[derive(Debug, Clone)]
enum Data {
    /// Bytes stored in the item (already decompressed).
    Inline(Arc<Vec<u8>>),
    /// `len` bytes at logical `addr` (uncompressed).
    Plain { addr: u64 },
    /// A compressed extent: decompress `disk_len` bytes at `addr`, then
    /// take `len` bytes from `skip`.
    Compressed {
        addr: u64,
        disk_len: u64,
        ram: u64,
        skip: u64,
        method: u8,
    },
    /// Hole or preallocated: zeros.
    Zero,
}

#[derive(Debug, Clone)]
struct Piece {
    file_offset: u64,
    len: u64,
    data: Data,
}

/// A file's extents, sorted by file offset; gaps read as zeros.
pub(crate) struct FileMap {
    pieces: Vec<Piece>,
    last: Mutex<Option<(u64, Arc<Vec<u8>>)>>,
}

/// Largest compressed extent, before and after compression
/// (BTRFS_MAX_COMPRESSED / BTRFS_MAX_UNCOMPRESSED: 128 KiB).
const MAX_COMPRESSED_EXTENT: u64 = 128 << 10;

fn decompress(method: u8, input: &[u8], ram: u64, sector: u32) -> Result<Vec<u8>, FsError> {
    if ram > MAX_COMPRESSED_EXTENT {
        return Err(corrupt(format!(
            "compressed extent claims {ram} bytes (at most {MAX_COMPRESSED_EXTENT})"
        )));
    }
    let want = ram as usize;
    let mut out = Vec::with_capacity(want);
    let fail = |what: &str, e: String| corrupt(format!("{what} extent does not decompress: {e}"));
    match method {
        1 => {
            flate2::read::ZlibDecoder::new(input)
                .take(ram)
                .read_to_end(&mut out)
                .map_err(|e| fail("zlib", e.to_string()))?;
        }
        3 => {
            // One frame; the rest of the last sector is padding.
            let d = zstd::stream::read::Decoder::with_buffer(input)
                .map_err(|e| fail("zstd", e.to_string()))?;
            d.single_frame()
                .take(ram)
                .read_to_end(&mut out)
                .map_err(|e| fail("zstd", e.to_string()))?;
        }
        2 => {
            // LZO: a u32 total length, then segments of (u32 length, lzo1x
            // data) each inflating to at most one sector; a segment header
            // never straddles a sector boundary.
            if input.len() < 4 {
                return Err(fail("lzo", "no header".into()));
            }
            let total = (le32(input, 0) as usize).min(input.len());
            let mut pos = 4;
            let sector = sector as usize;
            while pos + 4 <= total && out.len() < want {
                if sector - pos % sector < 4 {
                    pos = pos.div_ceil(sector) * sector;
                    continue;
                }
                let seg = le32(input, pos) as usize;
                pos += 4;
                if seg == 0 || pos + seg > total {
                    return Err(fail(
                        "lzo",
                        format!("segment of {seg} bytes at {pos} overruns {total}"),
                    ));
                }
                let chunk = super::lzo::decompress(&input[pos..pos + seg], sector)
                    .map_err(|e| fail("lzo", format!("{e:?}")))?;
                out.extend_from_slice(&chunk);
                pos += seg;
            }
            out.truncate(want);
        }
        m => {
            return Err(FsError::unsupported(
                FsKind::Btrfs,
                format!("compression type {m}"),
            ))
        }
    }
    if out.len() < want {
        out.resize(want, 0);
    }
    Ok(out)
}

impl FileMap {
    /// Collects the EXTENT_DATA items of inode `ino` in `tree`.
    pub(crate) fn load(
        reader: &Reader,
        tree: &Tree,
        ino: u64,
        size: u64,
    ) -> Result<FileMap, FsError> {
        let mut pieces: Vec<Piece> = Vec::new();
        let mut error = None;
        reader.search(
            tree,
            Key::new(ino, EXTENT_DATA, 0),
            Key::new(ino, EXTENT_DATA, u64::MAX),
            &mut |key, b| {
                if pieces.len() >= MAX_EXTENTS {
                    error = Some(corrupt(format!("inode {ino} has over {MAX_EXTENTS} extents")));
                    return Ok(false);
                }
                if b.len() < 21 {
                    return Err(corrupt(format!("inode {ino}: extent item of {} bytes", b.len())));
                }
                let ram = le64(b, 8);
                let method = b[16];
                if b[17] != 0 {
                    return Err(FsError::unsupported(FsKind::Btrfs, "encrypted extent"));
                }
                let kind = b[20];
                let piece = if kind == 0 {
                    let raw = &b[21..];
                    let data = if method == 0 {
                        raw.to_vec()
                    } else {
                        if ram > u64::from(reader.sector_size).max(4096) * 2 {
                            return Err(corrupt(format!("inode {ino}: inline extent claims {ram} bytes")));
                        }
                        decompress(method, raw, ram, reader.sector_size)?
                    };
                    Piece { file_offset: key.offset, len: data.len() as u64, data: Data::Inline(Arc::new(data)) }
                } else {
                    if b.len() < 53 {
                        return Err(corrupt(format!("inode {ino}: regular extent item of {} bytes", b.len())));
                    }
                    let addr = le64(b, 21);
                    let disk_len = le64(b, 29);
                    let skip = le64(b, 37);
                    let len = le64(b, 45);
                    let data = if kind == 2 || addr == 0 {
                        Data::Zero
                    } else if method == 0 {
                        Data::Plain { addr: addr.checked_add(skip).ok_or_else(|| corrupt("extent address overflows"))? }
                    } else {
                        if ram > MAX_UNCOMPRESSED || disk_len > MAX_UNCOMPRESSED || skip.checked_add(len).is_none_or(|e| e > ram) {
                            return Err(corrupt(format!(
                                "inode {ino}: compressed extent ram {ram}, disk {disk_len}, offset {skip}, length {len}"
                            )));
                        }
                        Data::Compressed { addr, disk_len, ram, skip, method }
                    };
                    Piece { file_offset: key.offset, len, data }
                };
                pieces.push(piece);
                Ok(true)
            },
        )?;
        if let Some(e) = error {
            return Err(e);
        }
        pieces.retain(|p| p.len > 0 && p.file_offset < size.max(1));
        // Once every piece ends below 2^63, offsets computed from it cannot overflow.
        if let Some(p) = pieces.iter().find(|p| {
            p.file_offset
                .checked_add(p.len)
                .is_none_or(|end| end > i64::MAX as u64)
        }) {
            return Err(corrupt(format!(
                "inode {ino}: extent at offset {} of {} bytes is out of range",
                p.file_offset, p.len
            )));
        }
        for w in pieces.windows(2) {
            if w[0].file_offset.saturating_add(w[0].len) > w[1].file_offset {
                return Err(corrupt(format!(
                    "inode {ino}: extents overlap at file offset {}",
                    w[1].file_offset
                )));
            }
        }
        Ok(FileMap {
            pieces,
            last: Mutex::new(None),
        })
    }

    fn decompressed(
        &self,
        reader: &Reader,
        addr: u64,
        disk_len: u64,
        ram: u64,
        method: u8,
    ) -> Result<Arc<Vec<u8>>, FsError> {
        if let Some((a, d)) = &*self.last.lock().expect("extent cache") {
            if *a == addr {
                return Ok(Arc::clone(d));
            }
        }
        if disk_len > MAX_COMPRESSED_EXTENT {
            return Err(corrupt(format!(
                "compressed extent at {addr:#x} occupies {disk_len} bytes (at most {MAX_COMPRESSED_EXTENT})"
            )));
        }
        let mut packed = vec![0u8; disk_len as usize];
        reader.read_logical(addr, &mut packed)?;
        let data = Arc::new(decompress(method, &packed, ram, reader.sector_size)?);
        *self.last.lock().expect("extent cache") = Some((addr, Arc::clone(&data)));
        Ok(data)
    }

    /// Fills `buf` from file offset `pos`.
    pub(crate) fn read_at(&self, reader: &Reader, pos: u64, buf: &mut [u8]) -> Result<(), FsError> {
        let mut done = 0usize;
        while done < buf.len() {
            let at = pos + done as u64;
            let i = self.pieces.partition_point(|p| p.file_offset + p.len <= at);
            let piece = self.pieces.get(i);
            let n;
            match piece.filter(|p| p.file_offset <= at) {
                None => {
                    let next = piece.map_or(u64::MAX, |p| p.file_offset);
                    n = (next - at).min((buf.len() - done) as u64) as usize;
                    buf[done..done + n].fill(0);
                }
                Some(p) => {
                    let within = at - p.file_offset;
                    n = (p.len - within).min((buf.len() - done) as u64) as usize;
                    let out = &mut buf[done..done + n];
                    match &p.data {
                        Data::Zero => out.fill(0),
                        Data::Inline(d) => {
                            let s = (within as usize).min(d.len());
                            let k = n.min(d.len() - s);
                            out[..k].copy_from_slice(&d[s..s + k]);
                            out[k..].fill(0);
                        }
                        Data::Plain { addr } => {
                            let at = addr
                                .checked_add(within)
                                .ok_or_else(|| corrupt("extent address overflows"))?;
                            reader.read_logical(at, out)?
                        }
                        Data::Compressed {
                            addr,
                            disk_len,
                            ram,
                            skip,
                            method,
                        } => {
                            let d = self.decompressed(reader, *addr, *disk_len, *ram, *method)?;
                            let s = (skip + within) as usize;
                            out.copy_from_slice(&d[s..s + n]);
                        }
                    }
                }
            }
            if n == 0 {
                return Err(corrupt("extent map makes no progress"));
            }
            done += n;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A crafted extent claiming terabytes is refused before anything is
    /// allocated for it.
    #[test]
    fn oversized_compressed_extents_are_refused() {
        for method in [1, 2, 3] {
            let e = decompress(method, &[0; 16], 1 << 40, 4096).unwrap_err();
            assert!(e.to_string().contains("at most"), "{e}");
        }
        let data = b"hello hello hello hello";
        let z = {
            use std::io::Write;
            let mut enc = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
            enc.write_all(data).unwrap();
            enc.finish().unwrap()
        };
        assert_eq!(decompress(1, &z, data.len() as u64, 4096).unwrap(), data);
    }
}
