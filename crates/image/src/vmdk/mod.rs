//! VMDK (VMware virtual disk): a hosted sparse file (`KDMV`:
//! monolithicSparse, streamOptimized — what OVA appliances carry), or a
//! text descriptor naming extent files (monolithicFlat's `-flat.vmdk`,
//! twoGbMaxExtentSparse/Flat's pieces).
//!
//! A descriptor is a few lines of `key = "value"` and one extent line per
//! piece of the disk, in order: `RW <sectors> FLAT "<file>" <offset>`,
//! `RW <sectors> SPARSE "<file>"`, `RW <sectors> ZERO`. Extent files are
//! opened through the caller (which confines them beside the descriptor
//! unless backing files are allowed); a descriptor never names another
//! descriptor, so nothing here recurses. Delta disks (`parentFileNameHint`)
//! and ESX's own formats (COWD, SESPARSE, VMFS raw device maps) are
//! refused by name.
//!
//! Why our own reader: no maintained crate reads VMDK through a shared
//! random-access reader (the `vmdk` crates on crates.io read a whole
//! monolithicSparse file through one `Read + Seek` cursor, without
//! streamOptimized or descriptors).

mod sparse;

use crate::error::ImageError;
use crate::read_at::{ReadAt, Span, Spans};
use sparse::{SparseExtent, SparseHeader};
use std::path::Path;
use std::sync::Arc;

/// Longest descriptor read (real ones are under 1 KiB).
const MAX_DESCRIPTOR: u64 = 64 << 10;
/// Most extents in one descriptor (a 2 TiB twoGbMaxExtent disk has 1024).
const MAX_EXTENTS: usize = 4096;

pub(crate) fn corrupt(path: &Path, detail: impl Into<String>) -> ImageError {
    ImageError::Corrupt {
        path: path.to_path_buf(),
        format: "VMDK",
        detail: detail.into(),
    }
}

fn unsupported(path: &Path, detail: impl Into<String>) -> ImageError {
    ImageError::Unsupported {
        path: path.to_path_buf(),
        format: "VMDK".into(),
        detail: detail.into(),
    }
}

/// What an opened VMDK is, for the chain link.
#[derive(Debug, Clone)]
pub(crate) struct VmdkInfo {
    /// The descriptor's `createType` (`monolithicSparse`, `streamOptimized`,
    /// `monolithicFlat`, …).
    pub(crate) create_type: String,
    /// The sparse header's version, for sparse files.
    pub(crate) version: Option<u32>,
    /// Grain size in bytes, for sparse files.
    pub(crate) grain_bytes: Option<u64>,
    /// Whether grains are deflate-compressed.
    pub(crate) compressed: bool,
}

/// The descriptor's keys bootproof uses and its extent lines.
#[derive(Debug, Default)]
struct Descriptor {
    create_type: Option<String>,
    parent: Option<String>,
    extents: Vec<ExtentLine>,
}

#[derive(Debug, PartialEq)]
struct ExtentLine {
    sectors: u64,
    kind: String,
    file: Option<String>,
    offset: u64,
}

impl Descriptor {
    fn parse(text: &str, path: &Path) -> Result<Descriptor, ImageError> {
        let mut d = Descriptor::default();
        for line in text.lines().map(str::trim) {
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let word = line.split_whitespace().next().unwrap_or_default();
            if matches!(word, "RW" | "RDONLY" | "NOACCESS") {
                if d.extents.len() >= MAX_EXTENTS {
                    return Err(corrupt(path, format!("more than {MAX_EXTENTS} extents")));
                }
                d.extents.push(ExtentLine::parse(line, path)?);
            } else if let Some((key, value)) = line.split_once('=') {
                let value = value.trim().trim_matches('"').to_string();
                match key.trim() {
                    "createType" => d.create_type = Some(value),
                    "parentFileNameHint" => d.parent = Some(value),
                    _ => {}
                }
            }
        }
        Ok(d)
    }
}

impl ExtentLine {
    /// `ACCESS SECTORS TYPE ["FILE" [OFFSET]]`; the file name may hold spaces.
    fn parse(line: &str, path: &Path) -> Result<ExtentLine, ImageError> {
        let bad = || corrupt(path, format!("extent line `{line}`"));
        let mut words = line.splitn(3, char::is_whitespace);
        let (_access, sectors, rest) = (words.next(), words.next(), words.next());
        let sectors: u64 = sectors.and_then(|s| s.parse().ok()).ok_or_else(bad)?;
        let rest = rest.unwrap_or_default().trim_start();
        let (kind, rest) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
        let rest = rest.trim();
        let (file, offset) = match rest.strip_prefix('"') {
            Some(quoted) => {
                let (name, tail) = quoted.split_once('"').ok_or_else(bad)?;
                let offset = match tail.trim() {
                    "" => 0,
                    o => o.parse().map_err(|_| bad())?,
                };
                (Some(name.to_string()), offset)
            }
            None if rest.is_empty() => (None, 0),
            None => return Err(bad()),
        };
        Ok(ExtentLine {
            sectors,
            kind: kind.to_string(),
            file,
            offset,
        })
    }
}

/// Reads the text of a descriptor file (the whole file) or of a sparse
/// file's embedded descriptor (`at`, `len` bytes).
fn descriptor_text(
    file: &dyn ReadAt,
    at: u64,
    len: u64,
    path: &Path,
) -> Result<String, ImageError> {
    let len = len.min(MAX_DESCRIPTOR).min(file.size().saturating_sub(at));
    let mut raw = vec![0u8; len as usize];
    file.read_at(at, &mut raw)
        .map_err(|e| ImageError::io(path, e))?;
    let end = raw.iter().position(|b| *b == 0).unwrap_or(raw.len());
    Ok(String::from_utf8_lossy(&raw[..end]).into_owned())
}

/// Opens a sparse (`KDMV`) VMDK file.
pub(crate) fn open_sparse(
    file: Arc<dyn ReadAt>,
    path: &Path,
) -> Result<(Arc<dyn ReadAt>, VmdkInfo), ImageError> {
    let header = SparseHeader::read(&*file, path)?;
    let (at, len) = header.descriptor;
    let desc = match (at.checked_mul(512), len.checked_mul(512)) {
        (Some(a), Some(l)) if a > 0 && l > 0 => {
            Descriptor::parse(&descriptor_text(&*file, a, l, path)?, path)?
        }
        _ => Descriptor::default(),
    };
    if let Some(parent) = desc.parent {
        return Err(unsupported(path, format!("a delta disk over `{parent}`")));
    }
    let info = VmdkInfo {
        create_type: desc.create_type.unwrap_or_else(|| {
            if header.compressed {
                "streamOptimized".into()
            } else {
                "monolithicSparse".into()
            }
        }),
        version: Some(header.version),
        grain_bytes: Some(header.grain * 512),
        compressed: header.compressed,
    };
    Ok((Arc::new(SparseExtent::new(file, header, path)?), info))
}

/// Opens an extent file by the name a descriptor gives it.
pub(crate) type ExtentOpener<'a> = dyn FnMut(&str) -> Result<Arc<dyn ReadAt>, ImageError> + 'a;

/// Opens a text descriptor; `open_extent` opens an extent file by the
/// name the descriptor gives (and decides where it may be).
pub(crate) fn open_descriptor(
    file: &dyn ReadAt,
    path: &Path,
    open_extent: &mut ExtentOpener<'_>,
) -> Result<(Arc<dyn ReadAt>, VmdkInfo), ImageError> {
    if file.size() > MAX_DESCRIPTOR {
        return Err(corrupt(path, "a descriptor file larger than 64 KiB"));
    }
    let desc = Descriptor::parse(&descriptor_text(file, 0, file.size(), path)?, path)?;
    if let Some(parent) = &desc.parent {
        return Err(unsupported(path, format!("a delta disk over `{parent}`")));
    }
    if desc.extents.is_empty() {
        return Err(corrupt(path, "a descriptor with no extent lines"));
    }
    let mut parts = Vec::with_capacity(desc.extents.len());
    let mut compressed = false;
    for e in &desc.extents {
        let len = e
            .sectors
            .checked_mul(512)
            .ok_or_else(|| corrupt(path, format!("extent of {} sectors", e.sectors)))?;
        let source = match (e.kind.as_str(), &e.file) {
            ("ZERO", _) => None,
            ("FLAT" | "VMFS", Some(name)) => {
                let f = open_extent(name)?;
                let from = e
                    .offset
                    .checked_mul(512)
                    .filter(|o| o.checked_add(len).is_some_and(|end| end <= f.size()));
                let Some(from) = from else {
                    return Err(corrupt(
                        path,
                        format!(
                            "flat extent `{name}` is shorter than its {} sectors",
                            e.sectors
                        ),
                    ));
                };
                Some((f, from))
            }
            ("SPARSE", Some(name)) => {
                let f = open_extent(name)?;
                let (sparse, info) = open_sparse(f, Path::new(name))?;
                compressed |= info.compressed;
                if sparse.size() < len {
                    return Err(corrupt(
                        path,
                        format!(
                            "sparse extent `{name}` holds fewer than its {} sectors",
                            e.sectors
                        ),
                    ));
                }
                Some((sparse, 0))
            }
            (kind, _) => return Err(unsupported(path, format!("extent type {kind}"))),
        };
        parts.push(Span { len, source });
    }
    let info = VmdkInfo {
        create_type: desc.create_type.unwrap_or_else(|| "descriptor".into()),
        version: None,
        grain_bytes: None,
        compressed,
    };
    let disk = Spans::new(parts).ok_or_else(|| corrupt(path, "extents larger than 2^64 bytes"))?;
    Ok((Arc::new(disk), info))
}

#[cfg(test)]
mod tests;
