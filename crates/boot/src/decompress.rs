//! Bounded decompression of the formats Linux kernels and initramfs use.
//!
//! Every decoder stops at a caller-given output limit: an input that would
//! inflate past it is an error, so a compression bomb cannot exhaust memory.

use serde::Serialize;
use std::io::{self, Read};

/// A compression format, recognised by magic bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
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

/// The magic that starts an LZ4 legacy stream (and may restart it).
const LZ4_LEGACY_MAGIC: u32 = 0x184c_2102;
/// Uncompressed size of an LZ4 legacy block.
const LZ4_BLOCK: usize = 8 << 20;

/// Reads until `buf` is full or the input ends; returns the bytes read.
pub fn read_full(r: &mut (impl Read + ?Sized), buf: &mut [u8]) -> io::Result<usize> {
    let mut done = 0;
    while done < buf.len() {
        match r.read(&mut buf[done..]) {
            Ok(0) => break,
            Ok(n) => done += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(done)
}

/// LZ4 legacy format, streamed: magic, then blocks of (u32 LE length,
/// block) each inflating to at most 8 MiB. Memory is one block in and one
/// out, whatever the stream declares. The stream ends at the end of input
/// or at a length no block can have followed by nothing (the kernel's build
/// appends the uncompressed size).
struct Lz4Legacy<R> {
    inner: R,
    out: Vec<u8>,
    at: usize,
    started: bool,
    done: bool,
    blocks: usize,
}

impl<R: Read> Lz4Legacy<R> {
    fn corrupt(detail: impl Into<String>) -> io::Error {
        io::Error::new(io::ErrorKind::InvalidData, detail.into())
    }

    fn finish(&mut self) -> io::Result<()> {
        self.done = true;
        if self.blocks == 0 {
            return Err(Self::corrupt("no blocks"));
        }
        Ok(())
    }

    fn next_block(&mut self) -> io::Result<()> {
        if !self.started {
            let mut magic = [0u8; 4];
            if read_full(&mut self.inner, &mut magic)? < 4
                || u32::from_le_bytes(magic) != LZ4_LEGACY_MAGIC
            {
                return Err(Self::corrupt("no LZ4 legacy magic"));
            }
            self.started = true;
        }
        let bound = lz4_flex::block::get_maximum_output_size(LZ4_BLOCK);
        loop {
            let mut len = [0u8; 4];
            if read_full(&mut self.inner, &mut len)? < 4 {
                return self.finish();
            }
            let len = u32::from_le_bytes(len);
            if len == LZ4_LEGACY_MAGIC {
                continue; // a concatenated legacy stream starts again
            }
            let len = len as usize;
            if len > bound {
                if read_full(&mut self.inner, &mut [0u8; 1])? == 0 {
                    return self.finish();
                }
                return Err(Self::corrupt(format!(
                    "block of {len} bytes exceeds the {bound}-byte bound of an 8 MiB block"
                )));
            }
            let mut block = vec![0u8; len];
            if read_full(&mut self.inner, &mut block)? < len {
                return self.finish(); // trailing bytes after the last block
            }
            self.out = lz4_flex::block::decompress(&block, LZ4_BLOCK)
                .map_err(|e| Self::corrupt(e.to_string()))?;
            self.at = 0;
            self.blocks += 1;
            return Ok(());
        }
    }
}

impl<R: Read> Read for Lz4Legacy<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.at >= self.out.len() {
            if self.done {
                return Ok(0);
            }
            self.next_block()?;
        }
        let n = buf.len().min(self.out.len() - self.at);
        buf[..n].copy_from_slice(&self.out[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

/// A streaming decoder for `c` over `input`: memory stays bounded by the
/// format (LZMA dictionaries by [`LZMA_MEMLIMIT`], LZ4 by its block size),
/// never by the input's declared sizes. The caller bounds the output.
pub fn reader<'a>(
    c: Compression,
    input: impl Read + 'a,
) -> Result<Box<dyn Read + 'a>, DecompressError> {
    let corrupt = |format, e: &dyn std::fmt::Display| DecompressError::Corrupt {
        format,
        detail: e.to_string(),
    };
    Ok(match c {
        Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(input)),
        Compression::Zstd => {
            Box::new(zstd::stream::read::Decoder::new(input).map_err(|e| corrupt("zstd", &e))?)
        }
        Compression::Xz => {
            let stream = liblzma::stream::Stream::new_stream_decoder(
                LZMA_MEMLIMIT,
                liblzma::stream::CONCATENATED,
            )
            .map_err(|e| corrupt("xz", &e))?;
            Box::new(liblzma::read::XzDecoder::new_stream(input, stream))
        }
        Compression::Lzma => {
            let stream = liblzma::stream::Stream::new_lzma_decoder(LZMA_MEMLIMIT)
                .map_err(|e| corrupt("lzma", &e))?;
            Box::new(liblzma::read::XzDecoder::new_stream(input, stream))
        }
        Compression::Lz4 => Box::new(Lz4Legacy {
            inner: input,
            out: Vec::new(),
            at: 0,
            started: false,
            done: false,
            blocks: 0,
        }),
        Compression::Bzip2 => Box::new(bzip2::read::MultiBzDecoder::new(input)),
    })
}

/// Decompresses `data` (a whole stream; trailing garbage after the stream
/// is ignored where the format allows), producing at most `limit` bytes.
pub fn decompress(c: Compression, data: &[u8], limit: u64) -> Result<Vec<u8>, DecompressError> {
    bounded(c.name(), reader(c, data)?, limit)
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
