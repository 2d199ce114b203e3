//! The qcow2 header and its extensions.

use crate::error::ImageError;
use crate::read_at::ReadAt;
use std::path::Path;

/// QEMU's own limit on the L1 table (QCOW_MAX_L1_SIZE): 32 MiB.
const MAX_L1_BYTES: u64 = 32 * 1024 * 1024;
/// Incompatible feature bits understood here.
const INCOMPAT_DIRTY: u64 = 1 << 0;
const INCOMPAT_CORRUPT: u64 = 1 << 1;
const INCOMPAT_DATA_FILE: u64 = 1 << 2;
const INCOMPAT_COMPRESSION: u64 = 1 << 3;
const INCOMPAT_EXTL2: u64 = 1 << 4;
const EXT_END: u32 = 0;
const EXT_BACKING_FORMAT: u32 = 0xe279_2aca;

/// How compressed clusters are compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Compression {
    /// Raw deflate (RFC 1951), the default.
    Deflate,
    /// Zstandard frames.
    Zstd,
}

impl Compression {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Compression::Deflate => "deflate",
            Compression::Zstd => "zstd",
        }
    }
}

/// The parts of a qcow2 header a reader needs, validated.
#[derive(Debug, Clone)]
pub(crate) struct Header {
    pub version: u32,
    pub cluster_bits: u32,
    pub size: u64,
    pub l1_entries: u64,
    pub l1_offset: u64,
    pub compression: Compression,
    pub extended_l2: bool,
    pub backing_file: Option<String>,
    pub backing_format: Option<String>,
    pub warnings: Vec<String>,
}

fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}
fn be64(b: &[u8], at: usize) -> u64 {
    u64::from_be_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

impl Header {
    /// Cluster size in bytes.
    pub(crate) fn cluster_size(&self) -> u64 {
        1u64 << self.cluster_bits
    }

    /// Parses and validates the header of `file` (a qcow2 by magic).
    pub(crate) fn parse(file: &dyn ReadAt, path: &Path) -> Result<Header, ImageError> {
        let corrupt = |d: String| ImageError::corrupt(path, d);
        let file_size = file.size();
        if file_size < 72 {
            return Err(corrupt(format!(
                "file is {file_size} bytes, shorter than the 72-byte header"
            )));
        }
        let mut h = vec![0u8; 4096.min(file_size as usize)];
        file.read_at(0, &mut h)
            .map_err(|e| ImageError::io(path, e))?;
        let version = be32(&h, 4);
        if version != 2 && version != 3 {
            return Err(ImageError::Unsupported {
                path: path.to_path_buf(),
                format: format!("qcow2 version {version}"),
                detail: "only versions 2 and 3 exist".into(),
            });
        }
        let backing_offset = be64(&h, 8);
        let backing_len = be32(&h, 16);
        let cluster_bits = be32(&h, 20);
        if !(9..=21).contains(&cluster_bits) {
            return Err(corrupt(format!(
                "cluster_bits {cluster_bits} outside 9..=21 (512 B to 2 MiB clusters)"
            )));
        }
        let size = be64(&h, 24);
        let crypt = be32(&h, 32);
        if crypt != 0 {
            let kind = match crypt {
                1 => "AES",
                2 => "LUKS",
                _ => "unknown method",
            };
            return Err(ImageError::Encrypted {
                path: path.to_path_buf(),
                what: "qcow2 data".into(),
                detail: format!("crypt_method {crypt}, {kind}"),
            });
        }
        let l1_entries = u64::from(be32(&h, 36));
        let l1_offset = be64(&h, 40);
        let cluster_size = 1u64 << cluster_bits;
        let mut warnings = Vec::new();

        let (mut incompat, header_len) = if version == 3 {
            if h.len() < 104 {
                return Err(corrupt("v3 header truncated".into()));
            }
            let hl = be32(&h, 100);
            if !(104..=h.len() as u32).contains(&hl) || !hl.is_multiple_of(8) {
                return Err(corrupt(format!("v3 header_length {hl} is invalid")));
            }
            (be64(&h, 72), hl as usize)
        } else {
            (0, 72)
        };
        let mut compression = Compression::Deflate;
        if incompat & INCOMPAT_COMPRESSION != 0 {
            if header_len < 105 {
                return Err(corrupt(
                    "compression-type feature set but header has no compression_type field".into(),
                ));
            }
            compression = match h[104] {
                0 => Compression::Deflate,
                1 => Compression::Zstd,
                other => {
                    return Err(ImageError::Unsupported {
                        path: path.to_path_buf(),
                        format: format!("qcow2 compression type {other}"),
                        detail: "known types are 0 (deflate) and 1 (zstd)".into(),
                    })
                }
            };
        }
        if incompat & INCOMPAT_DATA_FILE != 0 {
            return Err(ImageError::Unsupported {
                path: path.to_path_buf(),
                format: "qcow2 with an external data file".into(),
                detail: "incompatible feature bit 2".into(),
            });
        }
        if incompat & INCOMPAT_DIRTY != 0 {
            warnings.push("dirty bit set: refcounts may be stale (reading is unaffected)".into());
        }
        if incompat & INCOMPAT_CORRUPT != 0 {
            warnings.push("QEMU marked this image corrupt; data read may be wrong".into());
        }
        let extended_l2 = incompat & INCOMPAT_EXTL2 != 0;
        incompat &= !(INCOMPAT_DIRTY
            | INCOMPAT_CORRUPT
            | INCOMPAT_COMPRESSION
            | INCOMPAT_EXTL2
            | INCOMPAT_DATA_FILE);
        if incompat != 0 {
            return Err(ImageError::Unsupported {
                path: path.to_path_buf(),
                format: "qcow2 feature".into(),
                detail: format!("unknown incompatible feature bits {incompat:#x}"),
            });
        }

        // L1 must cover the virtual size and stay within QEMU's own limits.
        let l2_entries = cluster_size / if extended_l2 { 16 } else { 8 };
        let needed = size.div_ceil(cluster_size).div_ceil(l2_entries);
        if l1_entries < needed {
            return Err(corrupt(format!(
                "L1 table has {l1_entries} entries but the {size}-byte disk needs {needed}"
            )));
        }
        if l1_entries * 8 > MAX_L1_BYTES {
            return Err(corrupt(format!(
                "L1 table of {l1_entries} entries exceeds QEMU's 32 MiB limit"
            )));
        }
        match l1_offset.checked_add(l1_entries * 8) {
            Some(end) if end <= file_size && l1_offset.is_multiple_of(cluster_size) => {}
            _ if l1_entries == 0 => {}
            _ => {
                return Err(corrupt(format!(
                    "L1 table at {l1_offset:#x} ({l1_entries} entries) is unaligned or past the end of the {file_size}-byte file"
                )))
            }
        }

        // Header extensions (backing format) follow the header.
        let mut backing_format = None;
        let mut at = header_len;
        let mut guard = 0;
        while at + 8 <= h.len() && guard < 64 {
            guard += 1;
            let kind = be32(&h, at);
            let len = be32(&h, at + 4) as usize;
            if kind == EXT_END {
                break;
            }
            let data_end = at + 8 + len;
            if data_end > h.len() {
                break;
            }
            if kind == EXT_BACKING_FORMAT {
                backing_format = Some(String::from_utf8_lossy(&h[at + 8..data_end]).into_owned());
            }
            at = data_end.div_ceil(8) * 8;
        }

        let backing_file = if backing_offset != 0 && backing_len != 0 {
            if backing_len > 1023 {
                return Err(corrupt(format!(
                    "backing file name length {backing_len} exceeds 1023"
                )));
            }
            let mut name = vec![0u8; backing_len as usize];
            file.read_at(backing_offset, &mut name).map_err(|_| {
                corrupt(format!(
                    "backing file name at {backing_offset:#x} is past the end of the file"
                ))
            })?;
            Some(
                String::from_utf8(name)
                    .map_err(|_| corrupt("backing file name is not UTF-8".into()))?,
            )
        } else {
            None
        };

        Ok(Header {
            version,
            cluster_bits,
            size,
            l1_entries,
            l1_offset,
            compression,
            extended_l2,
            backing_file,
            backing_format,
            warnings,
        })
    }
}
