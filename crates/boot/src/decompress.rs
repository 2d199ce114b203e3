//! Bounded decompression of the formats Linux kernels and initramfs use.
//!
//! Every decoder stops at a caller-given output limit: an input that would
//! inflate past it is an error, so a compression bomb cannot exhaust memory.

use serde::Serialize;
use std::io::Read;

/// A compression format, recognised by magic bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    /// gzip (RFC 1952), possibly several members.
    Gzip,
    /// Zstandard frames.
    Zstd,
    /// xz (LZMA2 in the .xz container).
    Xz,
    /// Legacy `.lzma` (LZMA-alone).
    Lzma,
    /// LZ4 legacy frame format (what the kernel's `lz4 -l` writes).
    Lz4,
    /// bzip2.
    Bzip2,
}

impl Compression {
    /// Recognises compressed data by its first bytes.
    pub fn detect(data: &[u8]) -> Option<Compression> {
        let starts = |m: &[u8]| data.starts_with(m);
        if starts(&[0x1f, 0x8b]) {
            Some(Compression::Gzip)
        } else if starts(&[0x28, 0xb5, 0x2f, 0xfd]) {
            Some(Compression::Zstd)
        } else if starts(&[0xfd, b'7', b'z', b'X', b'Z', 0x00]) {
            Some(Compression::Xz)
        } else if starts(&[0x02, 0x21, 0x4c, 0x18]) {
            Some(Compression::Lz4)
        } else if starts(b"BZh") && data.len() > 3 && (b'1'..=b'9').contains(&data[3]) {
            Some(Compression::Bzip2)
        } else if data.len() >= 13 && data[0] == 0x5d && data[1..5] == [0, 0, 0x80, 0] {
            // LZMA-alone: lc/lp/pb byte 0x5d and a dictionary size (commonly 8 MiB …).
            Some(Compression::Lzma)
        } else if data.len() >= 13 && data[0] == 0x5d && data[1] == 0 && data[2] == 0 {
            Some(Compression::Lzma)
        } else {
            None
        }
    }

    /// From the name Linux's EFI zboot header records (`gzip`, `zstd`, …).
    pub fn from_name(name: &str) -> Option<Compression> {
        Some(match name {
            "gzip" => Compression::Gzip,
            "zstd" | "zstd22" => Compression::Zstd,
            "xzkern" | "xz" => Compression::Xz,
            "lzma" => Compression::Lzma,
            "lz4" => Compression::Lz4,
            "bzip2" => Compression::Bzip2,
            _ => return None,
        })
    }

    /// Lower-case name.
    pub fn name(self) -> &'static str {
        match self {
            Compression::Gzip => "gzip",
            Compression::Zstd => "zstd",
            Compression::Xz => "xz",
            Compression::Lzma => "lzma",
            Compression::Lz4 => "lz4",
            Compression::Bzip2 => "bzip2",
        }
    }
}

/// Why data could not be decompressed.
#[derive(Debug, thiserror::Error)]
pub enum DecompressError {
    /// The output would exceed the limit.
    #[error("{format} data inflates past the {limit}-byte limit (a compression bomb, or a larger limit is needed)")]
    TooLarge {
        /// The format.
        format: &'static str,
        /// The limit.
        limit: u64,
    },
    /// The stream is corrupt or truncated.
    #[error("{format} data is corrupt: {detail}")]
    Corrupt {
        /// The format.
        format: &'static str,
        /// The decoder's message.
        detail: String,
    },
}

/// Memory liblzma may use: a hostile header can declare a 4 GiB dictionary;
/// `xz -9`/`lzma -9` use 64 MiB (found by the `boot_initrd` fuzz target).
pub(crate) const LZMA_MEMLIMIT: u64 = 160 << 20;

fn bounded(format: &'static str, mut r: impl Read, limit: u64) -> Result<Vec<u8>, DecompressError> {
    let mut out = Vec::new();
    r.by_ref()
        .take(limit + 1)
        .read_to_end(&mut out)
        .map_err(|e| DecompressError::Corrupt {
            format,
            detail: e.to_string(),
        })?;
    if out.len() as u64 > limit {
        return Err(DecompressError::TooLarge { format, limit });
    }
    Ok(out)
}

/// LZ4 legacy format: magic, then blocks of (u32 LE length, block) each
/// inflating to at most 8 MiB.
fn lz4_legacy(data: &[u8], limit: u64) -> Result<Vec<u8>, DecompressError> {
    const BLOCK: usize = 8 << 20;
    let corrupt = |d: &str| DecompressError::Corrupt {
        format: "lz4",
        detail: d.to_string(),
    };
    let mut out = Vec::new();
    let mut pos = 4;
    while pos + 4 <= data.len() {
        let len = u32::from_le_bytes(data[pos..pos + 4].try_into().expect("4 bytes")) as usize;
        if len == 0x184c_2102 {
            pos += 4; // a concatenated legacy stream starts again
            continue;
        }
        pos += 4;
        let Some(block) = data.get(pos..pos.saturating_add(len)) else {
            break; // trailing bytes after the last block (the kernel appends the size)
        };
        let chunk =
            lz4_flex::block::decompress(block, BLOCK).map_err(|e| corrupt(&e.to_string()))?;
        if (out.len() + chunk.len()) as u64 > limit {
            return Err(DecompressError::TooLarge {
                format: "lz4",
                limit,
            });
        }
        out.extend_from_slice(&chunk);
        pos += len;
    }
    if out.is_empty() {
        return Err(corrupt("no blocks"));
    }
    Ok(out)
}

/// Decompresses `data` (a whole stream; trailing garbage after the stream
/// is ignored where the format allows), producing at most `limit` bytes.
pub fn decompress(c: Compression, data: &[u8], limit: u64) -> Result<Vec<u8>, DecompressError> {
    match c {
        Compression::Gzip => bounded("gzip", flate2::read::MultiGzDecoder::new(data), limit),
        Compression::Zstd => {
            let d = zstd::stream::read::Decoder::with_buffer(data).map_err(|e| {
                DecompressError::Corrupt {
                    format: "zstd",
                    detail: e.to_string(),
                }
            })?;
            bounded("zstd", d, limit)
        }
        Compression::Xz => {
            let stream = liblzma::stream::Stream::new_stream_decoder(
                LZMA_MEMLIMIT,
                liblzma::stream::CONCATENATED,
            )
            .map_err(|e| DecompressError::Corrupt {
                format: "xz",
                detail: e.to_string(),
            })?;
            bounded(
                "xz",
                liblzma::read::XzDecoder::new_stream(data, stream),
                limit,
            )
        }
        Compression::Lzma => {
            let stream = liblzma::stream::Stream::new_lzma_decoder(LZMA_MEMLIMIT).map_err(|e| {
                DecompressError::Corrupt {
                    format: "lzma",
                    detail: e.to_string(),
                }
            })?;
            bounded(
                "lzma",
                liblzma::read::XzDecoder::new_stream(data, stream),
                limit,
            )
        }
        Compression::Lz4 => lz4_legacy(data, limit),
        Compression::Bzip2 => bounded("bzip2", bzip2::read::MultiBzDecoder::new(data), limit),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bomb_is_refused() {
        let zeros = vec![0u8; 4 << 20];
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        std::io::Write::write_all(&mut gz, &zeros).unwrap();
        let packed = gz.finish().unwrap();
        assert_eq!(Compression::detect(&packed), Some(Compression::Gzip));
        assert_eq!(
            decompress(Compression::Gzip, &packed, 4 << 20)
                .unwrap()
                .len(),
            4 << 20
        );
        assert!(matches!(
            decompress(Compression::Gzip, &packed, 1 << 20),
            Err(DecompressError::TooLarge { .. })
        ));
        assert!(matches!(
            decompress(Compression::Gzip, &packed[..100], 8 << 20),
            Err(DecompressError::Corrupt { .. })
        ));
    }
}
