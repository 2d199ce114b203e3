//! Guest-offset to host-data translation and cluster decoding.

use super::header::{Compression, Header};
use crate::cache::FifoCache;
use crate::error::ImageError;
use crate::read_at::{by_block, check_bounds, ReadAt};
use std::io::{self, Read};
use std::path::Path;
use std::sync::Arc;

const L1_OFFSET_MASK: u64 = 0x00ff_ffff_ffff_fe00;
const L2_OFFSET_MASK: u64 = 0x00ff_ffff_ffff_fe00;
const L2_COMPRESSED: u64 = 1 << 62;
const L2_ZERO: u64 = 1;
/// How many L2 tables stay cached. Bounds memory at a few MiB whatever the
/// image claims.
const L2_CACHE_TABLES: usize = 32;
/// Bytes of decompressed clusters kept. Several clusters, not one: readers
/// such as a FAT driver alternate between a data cluster and the FAT
/// itself, and a single-entry cache decompressed each again on every read.
const CLUSTER_CACHE_BYTES: u64 = 8 << 20;

/// Where one guest cluster's bytes come from.
enum Mapping {
    /// Read from the backing file, or zeros without one.
    Unallocated,
    /// Reads as zeros.
    Zero,
    /// Stored uncompressed at this host offset.
    Data(u64),
    /// Stored compressed: host offset and the most bytes it may occupy.
    Compressed(u64, u64),
    /// Extended L2: per-subcluster state (32 subclusters).
    Sub { host: u64, alloc: u32, zero: u32 },
}

/// A qcow2 layer over its host file and optional backing layer.
pub(crate) struct Qcow2Reader {
    file: Box<dyn ReadAt>,
    header: Header,
    l1: Vec<u64>,
    backing: Option<Arc<dyn ReadAt>>,
    l2_cache: FifoCache<Vec<u64>>,
    cluster_cache: FifoCache<Vec<u8>>,
}

fn corrupt(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("corrupt qcow2: {msg}"))
}

impl Qcow2Reader {
    pub(crate) fn new(
        file: impl ReadAt + 'static,
        header: Header,
        backing: Option<Arc<dyn ReadAt>>,
        path: &Path,
    ) -> Result<Qcow2Reader, ImageError> {
        let mut raw = vec![0u8; (header.l1_entries * 8) as usize];
        if !raw.is_empty() {
            file.read_at(header.l1_offset, &mut raw)
                .map_err(|e| ImageError::io(path, e))?;
        }
        let l1 = raw
            .chunks_exact(8)
            .map(|c| u64::from_be_bytes(c.try_into().expect("8 bytes")))
            .collect();
        let clusters = (CLUSTER_CACHE_BYTES / header.cluster_size()).max(4) as usize;
        Ok(Qcow2Reader {
            file: Box::new(file),
            header,
            l1,
            backing,
            l2_cache: FifoCache::new(L2_CACHE_TABLES),
            cluster_cache: FifoCache::new(clusters),
        })
    }

    fn cluster_size(&self) -> u64 {
        self.header.cluster_size()
    }

    fn l2_table(&self, offset: u64) -> io::Result<Arc<Vec<u64>>> {
        self.l2_cache.get_or_load(offset, || {
            let cs = self.cluster_size();
            if !offset.is_multiple_of(cs)
                || offset.checked_add(cs).is_none_or(|e| e > self.file.size())
            {
                return Err(corrupt(format!(
                    "L2 table offset {offset:#x} is unaligned or past the end of the file"
                )));
            }
            let mut raw = vec![0u8; cs as usize];
            self.file.read_at(offset, &mut raw)?;
            Ok(raw
                .chunks_exact(8)
                .map(|c| u64::from_be_bytes(c.try_into().expect("8 bytes")))
                .collect())
        })
    }

    fn mapping(&self, guest_cluster: u64) -> io::Result<Mapping> {
        let cb = self.header.cluster_bits;
        let entry_words: u64 = if self.header.extended_l2 { 2 } else { 1 };
        let l2_entries = (1u64 << cb) / (8 * entry_words);
        let l1_index = guest_cluster / l2_entries;
        let l2_index = guest_cluster % l2_entries;
        let Some(&l1e) = self.l1.get(l1_index as usize) else {
            return Ok(Mapping::Unallocated);
        };
        let l2_offset = l1e & L1_OFFSET_MASK;
        if l2_offset == 0 {
            return Ok(Mapping::Unallocated);
        }
        let table = self.l2_table(l2_offset)?;
        let word = (l2_index * entry_words) as usize;
        let e = table[word];
        if e & L2_COMPRESSED != 0 {
            if self.header.extended_l2 {
                // Compressed clusters have no subcluster bitmap.
            }
            let x = 62 - (cb - 8);
            let host = e & ((1u64 << x) - 1);
            let sectors = (e & ((1u64 << 62) - 1)) >> x;
            let max_len = (sectors + 1) * 512 - (host & 511);
            return Ok(Mapping::Compressed(host, max_len));
        }
        let host = e & L2_OFFSET_MASK;
        if self.header.extended_l2 {
            let bitmap = table[word + 1];
            return Ok(Mapping::Sub {
                host,
                alloc: bitmap as u32,
                zero: (bitmap >> 32) as u32,
            });
        }
        if e & L2_ZERO != 0 && self.header.version >= 3 {
            return Ok(Mapping::Zero);
        }
        if host == 0 {
            return Ok(Mapping::Unallocated);
        }
        Ok(Mapping::Data(host))
    }

    fn read_host(&self, host: u64, buf: &mut [u8]) -> io::Result<()> {
        let end = host.checked_add(buf.len() as u64);
        if end.is_none_or(|e| e > self.file.size()) {
            return Err(corrupt(format!(
                "data cluster at {host:#x} is past the end of the {}-byte file",
                self.file.size()
            )));
        }
        self.file.read_at(host, buf)
    }

    fn read_backing(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        match &self.backing {
            None => buf.fill(0),
            Some(b) => {
                // A backing file may be smaller than the overlay: the rest is zeros.
                let bsize = b.size();
                let avail = bsize.saturating_sub(offset).min(buf.len() as u64) as usize;
                if avail > 0 {
                    b.read_at(offset, &mut buf[..avail])?;
                }
                buf[avail..].fill(0);
            }
        }
        Ok(())
    }

    fn decompressed_cluster(&self, host: u64, max_len: u64) -> io::Result<Arc<Vec<u8>>> {
        self.cluster_cache
            .get_or_load(host, || self.decompress_cluster(host, max_len))
    }

    fn decompress_cluster(&self, host: u64, max_len: u64) -> io::Result<Vec<u8>> {
        let file_size = self.file.size();
        if host >= file_size {
            return Err(corrupt(format!(
                "compressed cluster at {host:#x} is past the end of the file"
            )));
        }
        // The descriptor rounds up to sectors; the file may end sooner.
        let len = max_len
            .min(file_size - host)
            .min(2 * self.cluster_size() + 512);
        let mut packed = vec![0u8; len as usize];
        self.file.read_at(host, &mut packed)?;
        let cs = self.cluster_size() as usize;
        let mut out = Vec::with_capacity(cs);
        let res = match self.header.compression {
            Compression::Deflate => flate2::read::DeflateDecoder::new(&packed[..])
                .take(cs as u64)
                .read_to_end(&mut out),
            Compression::Zstd => zstd::stream::read::Decoder::with_buffer(&packed[..])
                .and_then(|d| d.single_frame().take(cs as u64).read_to_end(&mut out)),
        };
        res.map_err(|e| {
            corrupt(format!(
                "compressed cluster at {host:#x} does not decompress ({}): {e}",
                self.header.compression.name()
            ))
        })?;
        if out.len() != cs {
            return Err(corrupt(format!(
                "compressed cluster at {host:#x} inflates to {} bytes, not {cs}",
                out.len()
            )));
        }
        Ok(out)
    }

    /// Reads `buf` from within one guest cluster.
    fn read_in_cluster(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        let cs = self.cluster_size();
        let in_cluster = offset % cs;
        match self.mapping(offset / cs)? {
            Mapping::Unallocated => self.read_backing(offset, buf),
            Mapping::Zero => {
                buf.fill(0);
                Ok(())
            }
            Mapping::Data(host) => self.read_host(host + in_cluster, buf),
            Mapping::Compressed(host, max_len) => {
                let data = self.decompressed_cluster(host, max_len)?;
                let start = in_cluster as usize;
                buf.copy_from_slice(&data[start..start + buf.len()]);
                Ok(())
            }
            Mapping::Sub { host, alloc, zero } => {
                let sub = cs / 32;
                let mut done = 0usize;
                while done < buf.len() {
                    let pos = in_cluster + done as u64;
                    let idx = (pos / sub) as u32;
                    let n = ((sub - pos % sub) as usize).min(buf.len() - done);
                    let part = &mut buf[done..done + n];
                    if zero & (1 << idx) != 0 {
                        part.fill(0);
                    } else if alloc & (1 << idx) != 0 {
                        self.read_host(host + pos, part)?;
                    } else {
                        self.read_backing(offset + done as u64, part)?;
                    }
                    done += n;
                }
                Ok(())
            }
        }
    }
}

impl ReadAt for Qcow2Reader {
    fn size(&self) -> u64 {
        self.header.size
    }
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        check_bounds(offset, buf.len(), self.header.size)?;
        by_block(offset, buf, self.cluster_size(), |at, part| {
            self.read_in_cluster(at, part)
        })
    }
}
