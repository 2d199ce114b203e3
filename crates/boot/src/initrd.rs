//! Initramfs images: one or more cpio (newc) archives, each optionally
//! compressed, concatenated (early microcode first, then the main archive).

use crate::decompress::{decompress, Compression, DecompressError};
use serde::Serialize;
use std::collections::BTreeSet;

/// Largest decompressed initramfs accepted.
pub const MAX_INITRD: u64 = 2 << 30;
/// Most entries listed (bounds memory on hostile archives).
const MAX_ENTRIES: usize = 500_000;
/// Nesting of compressed-inside-compressed segments followed.
const MAX_DEPTH: usize = 2;

/// One archive of the concatenation.
#[derive(Debug, Clone, Serialize)]
pub struct Segment {
    /// Byte offset in the (outer) file.
    pub offset: u64,
    /// Compression of this segment, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub compression: Option<Compression>,
    /// Entries in it.
    pub entries: usize,
}

/// What an initramfs holds.
#[derive(Debug, Clone, Default, Serialize)]
pub struct InitrdInfo {
    /// The archives, in order.
    pub segments: Vec<Segment>,
    /// Every path (without a leading `./`), in archive order.
    #[serde(skip)]
    pub paths: Vec<String>,
    /// Kernel modules (`*.ko`, `*.ko.xz`, `*.ko.zst`, `*.ko.gz`) by file name stem.
    pub modules: BTreeSet<String>,
    /// Kernel versions that have `lib/modules/<version>/` inside.
    pub module_versions: BTreeSet<String>,
    /// Whether `/init` exists.
    pub has_init: bool,
}

/// Why an initramfs could not be read.
#[derive(Debug, thiserror::Error)]
pub enum InitrdError {
    /// A segment does not decompress.
    #[error(transparent)]
    Decompress(#[from] DecompressError),
    /// A cpio header is malformed.
    #[error("corrupt cpio archive at byte {offset}: {detail}")]
    Corrupt {
        /// Where.
        offset: u64,
        /// What.
        detail: String,
    },
    /// Something other than cpio or a known compression.
    #[error("unrecognised data at byte {0} (not cpio newc and no known compression)")]
    Unknown(u64),
}

fn hex(b: &[u8]) -> Option<u64> {
    u64::from_str_radix(std::str::from_utf8(b).ok()?, 16).ok()
}

/// Parses one newc archive at `pos`; returns the offset after its trailer.
fn cpio(
    data: &[u8],
    mut pos: usize,
    base: u64,
    info: &mut InitrdInfo,
) -> Result<(usize, usize), InitrdError> {
    let mut count = 0;
    loop {
        let corrupt = |detail: &str| InitrdError::Corrupt {
            offset: base + pos as u64,
            detail: detail.into(),
        };
        let h = data
            .get(pos..pos + 110)
            .ok_or_else(|| corrupt("header truncated"))?;
        if &h[..6] != b"070701" && &h[..6] != b"070702" {
            return Err(corrupt("bad magic"));
        }
        let mode = hex(&h[14..22]).ok_or_else(|| corrupt("bad mode"))?;
        let size = hex(&h[54..62]).ok_or_else(|| corrupt("bad file size"))? as usize;
        let name_size = hex(&h[94..102]).ok_or_else(|| corrupt("bad name size"))? as usize;
        let name_end = (pos + 110)
            .checked_add(name_size)
            .ok_or_else(|| corrupt("name size overflows"))?;
        let name_raw = data
            .get(pos + 110..name_end)
            .ok_or_else(|| corrupt("name truncated"))?;
        let name =
            String::from_utf8_lossy(name_raw.strip_suffix(&[0]).unwrap_or(name_raw)).into_owned();
        let data_start = name_end.div_ceil(4) * 4;
        let data_end = data_start
            .checked_add(size)
            .ok_or_else(|| corrupt("file size overflows"))?;
        if data_end > data.len() {
            return Err(corrupt("file data truncated"));
        }
        pos = data_end.div_ceil(4) * 4;
        if name == "TRAILER!!!" {
            return Ok((pos.min(data.len()), count));
        }
        count += 1;
        let path = name
            .trim_start_matches("./")
            .trim_start_matches('/')
            .to_string();
        if path == "init" {
            info.has_init = true;
        }
        if mode & 0o170000 == 0o100000 {
            let file = path.rsplit('/').next().unwrap_or(&path);
            for ext in [".ko", ".ko.xz", ".ko.zst", ".ko.gz"] {
                if let Some(stem) = file.strip_suffix(ext) {
                    info.modules.insert(stem.replace('-', "_"));
                }
            }
        }
        if let Some(rest) = path
            .strip_prefix("lib/modules/")
            .or_else(|| path.strip_prefix("usr/lib/modules/"))
        {
            if let Some(v) = rest.split('/').next().filter(|v| !v.is_empty()) {
                info.module_versions.insert(v.to_string());
            }
        }
        if info.paths.len() < MAX_ENTRIES {
            info.paths.push(path);
        }
    }
}

fn parse(data: &[u8], base: u64, depth: usize, info: &mut InitrdInfo) -> Result<(), InitrdError> {
    let mut pos = 0;
    while pos < data.len() {
        // Archives are padded with zeros between them (often to 512 bytes).
        while pos < data.len() && data[pos] == 0 {
            pos += 1;
        }
        if pos >= data.len() {
            break;
        }
        let rest = &data[pos..];
        if rest.starts_with(b"0707") {
            let (end, entries) = cpio(data, pos, base, info)?;
            info.segments.push(Segment {
                offset: base + pos as u64,
                compression: None,
                entries,
            });
            pos = end;
        } else if let Some(c) = Compression::detect(rest) {
            if depth >= MAX_DEPTH {
                return Err(InitrdError::Unknown(base + pos as u64));
            }
            // A compressed segment runs to the end of the file.
            let inner = decompress(c, rest, MAX_INITRD)?;
            let before = info.segments.len();
            parse(&inner, base + pos as u64, depth + 1, info)?;
            let entries = info.segments[before..].iter().map(|s| s.entries).sum();
            info.segments.truncate(before);
            info.segments.push(Segment {
                offset: base + pos as u64,
                compression: Some(c),
                entries,
            });
            break;
        } else {
            return Err(InitrdError::Unknown(base + pos as u64));
        }
    }
    Ok(())
}

/// Lists an initramfs.
pub fn inspect(data: &[u8]) -> Result<InitrdInfo, InitrdError> {
    let mut info = InitrdInfo::default();
    parse(data, 0, 0, &mut info)?;
    Ok(info)
}
