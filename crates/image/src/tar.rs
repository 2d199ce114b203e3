//! The members of a tar archive, as byte ranges of the archive (no copy):
//! an OVA (the OVF descriptor and its VMDK disks) or a cloud image's
//! `disk.raw` in a `.tar` (GCE's layout, once its gzip is unpacked).
//!
//! Reads ustar and GNU headers: octal or base-256 sizes, GNU long names
//! (`L`), pax `path` records (`x`), and old-GNU sparse members (`S`, what
//! `tar -S` writes: a map of data segments, holes between them); other
//! entry types are skipped. Each header is one 512-byte read, so the work
//! is bounded by the number of members and segments (both capped), never
//! by a declared size.
//!
//! Why our own reader: the `tar` crate reads through one `Read` cursor and
//! copies entries out, where an OVA's disk must stay a range of the file
//! that the format readers (and QEMU, through a `raw` offset) read in place.

use crate::error::ImageError;
use crate::read_at::{ReadAt, Slice, Span, Spans};
use std::path::Path;
use std::sync::Arc;

/// Most members listed (an OVA has a handful; a cloud tar one).
const MAX_MEMBERS: usize = 10_000;
/// Longest name taken from a long-name or pax record.
const MAX_NAME: u64 = 4096;
/// Largest pax header read.
const MAX_PAX: u64 = 64 << 10;
/// Most data segments of one sparse member.
const MAX_SEGMENTS: usize = 1 << 20;

/// One regular file in the archive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Member {
    /// Its path in the archive.
    pub(crate) name: String,
    /// Where its bytes start in the archive.
    pub(crate) offset: u64,
    /// How many bytes it has (for a sparse member, with its holes).
    pub(crate) size: u64,
    /// A sparse member's data segments (offset in the file, length),
    /// stored one after another from `offset`.
    pub(crate) segments: Option<Vec<(u64, u64)>>,
}

impl Member {
    /// The member's bytes, read in place (holes read as zeros).
    pub(crate) fn reader(&self, archive: Arc<dyn ReadAt>) -> Arc<dyn ReadAt> {
        let Some(segments) = &self.segments else {
            return Arc::new(Slice::new(archive, self.offset, self.size));
        };
        let mut spans = Vec::with_capacity(segments.len() * 2 + 1);
        let (mut at, mut stored) = (0u64, self.offset);
        for (off, len) in segments {
            spans.push(Span {
                len: off - at,
                source: None,
            });
            spans.push(Span {
                len: *len,
                source: Some((Arc::clone(&archive), stored)),
            });
            at = off + len;
            stored += len;
        }
        spans.push(Span {
            len: self.size - at,
            source: None,
        });
        // Checked when the map was read: the segments fit the size.
        Arc::new(Spans::new(spans).expect("segments within the member's size"))
    }
}

fn corrupt(path: &Path, detail: impl Into<String>) -> ImageError {
    ImageError::Corrupt {
        path: path.to_path_buf(),
        format: "tar",
        detail: detail.into(),
    }
}

/// Whether the 512 bytes are a tar header (ustar or GNU magic).
pub(crate) fn is_tar_header(b: &[u8]) -> bool {
    b.len() >= 512 && (&b[257..262] == b"ustar")
}

/// A numeric header field: octal digits, or base-256 (high bit set).
fn number(field: &[u8]) -> Option<u64> {
    if field.first().is_some_and(|b| b & 0x80 != 0) {
        let mut v: u64 = u64::from(field[0] & 0x7f);
        for b in &field[1..] {
            v = v.checked_mul(256)?.checked_add(u64::from(*b))?;
        }
        return Some(v);
    }
    let text = std::str::from_utf8(field).ok()?;
    let digits = text.trim_matches(|c: char| c == '\0' || c == ' ');
    if digits.is_empty() {
        return Some(0);
    }
    u64::from_str_radix(digits, 8).ok()
}

fn text(field: &[u8]) -> String {
    let end = field.iter().position(|b| *b == 0).unwrap_or(field.len());
    String::from_utf8_lossy(&field[..end]).into_owned()
}

/// The regular files of the archive in `file`, in order.
pub(crate) fn members(file: &dyn ReadAt, path: &Path) -> Result<Vec<Member>, ImageError> {
    let mut out = Vec::new();
    let mut at = 0u64;
    let mut next_name: Option<String> = None;
    let mut header = [0u8; 512];
    while at.saturating_add(512) <= file.size() {
        file.read_at(at, &mut header)
            .map_err(|e| ImageError::io(path, e))?;
        if header.iter().all(|b| *b == 0) {
            break; // the end-of-archive blocks
        }
        if !is_tar_header(&header) {
            return Err(corrupt(path, format!("no tar header at {at}")));
        }
        let size = number(&header[124..136])
            .ok_or_else(|| corrupt(path, format!("unreadable size in the header at {at}")))?;
        let mut data = at + 512;
        let mut segments = None;
        if header[156] == b'S' {
            let (map, skip) = sparse_map(file, &header, at, path)?;
            data += skip;
            segments = Some(map);
        }
        let end = data
            .checked_add(size)
            .filter(|e| *e <= file.size())
            .ok_or_else(|| {
                corrupt(
                    path,
                    format!("a member of {size} bytes at {at} past the end"),
                )
            })?;
        let read_small = |limit: u64| -> Result<Vec<u8>, ImageError> {
            let mut b = vec![0u8; size.min(limit) as usize];
            file.read_at(data, &mut b)
                .map_err(|e| ImageError::io(path, e))?;
            Ok(b)
        };
        match header[156] {
            b'0' | 0 | b'7' | b'S' => {
                if out.len() >= MAX_MEMBERS {
                    return Err(corrupt(path, format!("more than {MAX_MEMBERS} members")));
                }
                let name = next_name.take().unwrap_or_else(|| {
                    let prefix = text(&header[345..500]);
                    let name = text(&header[..100]);
                    if prefix.is_empty() {
                        name
                    } else {
                        format!("{prefix}/{name}")
                    }
                });
                let (size, segments) = match segments.take() {
                    Some((real, map)) => {
                        check_segments(&map, real, size).map_err(|why| {
                            corrupt(path, format!("sparse member at {at}: {why}"))
                        })?;
                        (real, Some(map))
                    }
                    None => (size, None),
                };
                out.push(Member {
                    name,
                    offset: data,
                    size,
                    segments,
                });
            }
            b'L' => next_name = Some(text(&read_small(MAX_NAME)?)),
            b'x' => {
                let pax = read_small(MAX_PAX)?;
                if let Some(p) = pax_path(&pax) {
                    next_name = Some(p);
                }
            }
            _ => {}
        }
        at = end.div_ceil(512) * 512;
    }
    Ok(out)
}

/// A sparse member's real size and data segments (offset, length).
type SparseMap = (u64, Vec<(u64, u64)>);

/// A sparse (`S`) header's map, and how many bytes of extension headers
/// follow the header.
fn sparse_map(
    file: &dyn ReadAt,
    header: &[u8; 512],
    at: u64,
    path: &Path,
) -> Result<(SparseMap, u64), ImageError> {
    let bad = || corrupt(path, format!("unreadable sparse map in the header at {at}"));
    let mut map = Vec::new();
    let mut entries = |block: &[u8], count: usize| -> Result<(), ImageError> {
        for e in block.chunks_exact(24).take(count) {
            if e[0] == 0 {
                break;
            }
            let (off, len) = (
                number(&e[..12]).ok_or_else(bad)?,
                number(&e[12..]).ok_or_else(bad)?,
            );
            if map.len() >= MAX_SEGMENTS {
                return Err(corrupt(
                    path,
                    format!("more than {MAX_SEGMENTS} sparse segments"),
                ));
            }
            map.push((off, len));
        }
        Ok(())
    };
    entries(&header[386..482], 4)?;
    let real = number(&header[483..495]).ok_or_else(bad)?;
    let mut extended = header[482] != 0;
    let mut skip = 0u64;
    let mut block = [0u8; 512];
    while extended {
        let next = at + 512 + skip;
        if next.saturating_add(512) > file.size() {
            return Err(corrupt(path, format!("sparse map past the end, at {next}")));
        }
        file.read_at(next, &mut block)
            .map_err(|e| ImageError::io(path, e))?;
        entries(&block[..504], 21)?;
        extended = block[504] != 0;
        skip += 512;
    }
    Ok(((real, map), skip))
}

/// The segments are in order, apart, inside `real` bytes, and their data
/// is the `stored` bytes the header declares.
fn check_segments(map: &[(u64, u64)], real: u64, stored: u64) -> Result<(), String> {
    let mut end = 0u64;
    let mut total = 0u64;
    for (off, len) in map {
        if *off < end {
            return Err(format!("segment at {off} overlaps the one before"));
        }
        end = off
            .checked_add(*len)
            .filter(|e| *e <= real)
            .ok_or("a segment past the real size")?;
        total += len;
    }
    if total != stored {
        return Err(format!("segments hold {total} bytes, the header {stored}"));
    }
    Ok(())
}

/// The `path` record of a pax header (`<len> path=<value>\n` records).
fn pax_path(pax: &[u8]) -> Option<String> {
    String::from_utf8_lossy(pax)
        .lines()
        .filter_map(|l| l.split_once(' ').map(|(_, kv)| kv))
        .find_map(|kv| kv.strip_prefix("path=").map(str::to_string))
}

/// Disk-like member names, by extension.
const DISK_EXTENSIONS: [&str; 7] = [".vmdk", ".raw", ".img", ".qcow2", ".vhd", ".vhdx", ".disk"];

/// The member that holds the disk: the first file the OVF descriptor
/// references that the archive has, else the only disk-like member, else
/// the only member. `None` when that is ambiguous; the reason names the
/// candidates.
pub(crate) fn disk_member<'a>(
    members: &'a [Member],
    ovf: Option<&str>,
) -> Result<&'a Member, String> {
    if let Some(ovf) = ovf {
        for href in ovf_hrefs(ovf) {
            if let Some(m) = members.iter().find(|m| m.name == href) {
                return Ok(m);
            }
        }
    }
    let disks: Vec<&Member> = members
        .iter()
        .filter(|m| {
            let lower = m.name.to_ascii_lowercase();
            DISK_EXTENSIONS.iter().any(|e| lower.ends_with(e))
        })
        .collect();
    match (disks.as_slice(), members) {
        ([one], _) => Ok(one),
        ([], [one]) => Ok(one),
        ([], _) => Err("no member looks like a disk".into()),
        (many, _) => Err(format!(
            "several members look like disks ({})",
            many.iter()
                .map(|m| m.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )),
    }
}

/// The `href` attributes of an OVF's `<File>` references, in order.
fn ovf_hrefs(ovf: &str) -> Vec<String> {
    let mut out = Vec::new();
    for file in ovf.split("<File").skip(1).take(MAX_MEMBERS) {
        let tag = file.split('>').next().unwrap_or_default();
        for attr in ["ovf:href=\"", "href=\""] {
            if let Some(rest) = tag.split(attr).nth(1) {
                if let Some(v) = rest.split('"').next() {
                    out.push(v.to_string());
                    break;
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::read_at::MemImage;

    fn header(name: &str, size: u64, kind: u8) -> [u8; 512] {
        let mut h = [0u8; 512];
        h[..name.len()].copy_from_slice(name.as_bytes());
        let size = format!("{size:011o}\0");
        h[124..136].copy_from_slice(size.as_bytes());
        h[156] = kind;
        h[257..263].copy_from_slice(b"ustar\0");
        h
    }

    fn archive(entries: &[(&str, u8, Vec<u8>)]) -> Vec<u8> {
        let mut v = Vec::new();
        for (name, kind, data) in entries {
            v.extend_from_slice(&header(name, data.len() as u64, *kind));
            v.extend_from_slice(data);
            v.resize(v.len().div_ceil(512) * 512, 0);
        }
        v.extend_from_slice(&[0u8; 1024]);
        v
    }

    fn list(v: Vec<u8>) -> Result<Vec<Member>, ImageError> {
        // (the archive's last blocks are zeros: the end marker)
        members(&MemImage(v), Path::new("t.tar"))
    }

    #[test]
    fn members_long_names_and_pax_paths() {
        let long = "d/".repeat(80) + "disk.vmdk";
        let v = archive(&[
            ("a.ovf", b'0', b"<Envelope/>".to_vec()),
            ("././@LongLink", b'L', long.clone().into_bytes()),
            ("short", b'0', vec![7; 600]),
            ("pax", b'x', b"30 path=pax/named/disk.raw\n".to_vec()),
            ("x", b'0', vec![1; 3]),
            ("dir/", b'5', vec![]),
        ]);
        let m = list(v).unwrap();
        let names: Vec<&str> = m.iter().map(|m| m.name.as_str()).collect();
        assert_eq!(names, ["a.ovf", long.as_str(), "pax/named/disk.raw"]);
        assert_eq!((m[1].offset, m[1].size), (512 * 5, 600));
    }

    #[test]
    fn the_disk_is_the_ovf_reference_or_the_only_disk() {
        let m = |name: &str| Member {
            name: name.into(),
            offset: 0,
            size: 1,
            segments: None,
        };
        let all = [m("x.ovf"), m("x.mf"), m("x-disk2.vmdk"), m("x-disk1.vmdk")];
        let ovf = r#"<References><File ovf:href="x-disk1.vmdk" ovf:id="f1"/><File ovf:href="x-disk2.vmdk"/></References>"#;
        assert_eq!(disk_member(&all, Some(ovf)).unwrap().name, "x-disk1.vmdk");
        assert!(disk_member(&all, None)
            .unwrap_err()
            .contains("x-disk2.vmdk"));
        assert_eq!(
            disk_member(&[m("disk.raw")], None).unwrap().name,
            "disk.raw"
        );
        assert_eq!(disk_member(&[m("blob")], None).unwrap().name, "blob");
        assert!(disk_member(&[m("a"), m("b")], None).is_err());
    }

    /// An old-GNU sparse member of `real` bytes with these segments (the
    /// first four in the header, the rest in one extension block).
    fn sparse(segments: &[(u64, u64)], real: u64, stored: Option<u64>) -> Vec<u8> {
        let total: u64 = segments.iter().map(|s| s.1).sum();
        let mut h = header("disk.raw", stored.unwrap_or(total), b'S');
        let field = |v: u64| format!("{v:011o}\0").into_bytes();
        for (i, (off, len)) in segments.iter().take(4).enumerate() {
            h[386 + i * 24..398 + i * 24].copy_from_slice(&field(*off));
            h[398 + i * 24..410 + i * 24].copy_from_slice(&field(*len));
        }
        h[483..495].copy_from_slice(&field(real));
        h[482] = u8::from(segments.len() > 4);
        let mut v = h.to_vec();
        if segments.len() > 4 {
            let mut ext = [0u8; 512];
            for (i, (off, len)) in segments[4..].iter().enumerate() {
                ext[i * 24..i * 24 + 12].copy_from_slice(&field(*off));
                ext[i * 24 + 12..i * 24 + 24].copy_from_slice(&field(*len));
            }
            v.extend_from_slice(&ext);
        }
        for (i, (_, len)) in segments.iter().enumerate() {
            v.extend(std::iter::repeat_n(i as u8 + 1, *len as usize));
        }
        v.resize(v.len().div_ceil(512) * 512 + 1024, 0);
        v
    }

    #[test]
    fn sparse_members_read_with_their_holes() {
        let segments: Vec<(u64, u64)> = (0..6).map(|i| (i * 1000 + 100, 10)).collect();
        let v = sparse(&segments, 7000, None);
        let archive: Arc<dyn ReadAt> = Arc::new(MemImage(v.clone()));
        let m = members(&*archive, Path::new("t.tar")).unwrap();
        assert_eq!(
            (m[0].size, m[0].offset),
            (7000, 1024),
            "after the extension block"
        );
        let r = m[0].reader(archive);
        let mut disk = vec![0xeeu8; 7000];
        r.read_at(0, &mut disk).unwrap();
        for (i, (off, len)) in segments.iter().enumerate() {
            let (off, len) = (*off as usize, *len as usize);
            assert!(
                disk[off..off + len].iter().all(|b| *b == i as u8 + 1),
                "segment {i}"
            );
            assert!(
                disk[off - 100..off].iter().all(|b| *b == 0),
                "hole before {i}"
            );
        }
        assert!(disk[5110..].iter().all(|b| *b == 0), "the tail is a hole");
        // Overlapping, past the real size, or not the declared data size.
        for bad in [
            sparse(&[(0, 10), (5, 10)], 100, None),
            sparse(&[(0, 10), (95, 10)], 100, None),
            sparse(&[(0, 10)], 100, Some(20)),
        ] {
            assert!(list(bad).is_err());
        }
    }

    #[test]
    fn hostile_headers_are_errors() {
        // A size past the end of the archive.
        let mut v = archive(&[("a", b'0', vec![1; 10])]);
        v[124..136].copy_from_slice(b"77777777777\0");
        assert!(list(v).is_err());
        // Base-256 sizes that overflow, and garbage in the size field.
        let mut v = archive(&[("a", b'0', vec![1; 10])]);
        v[124..136].copy_from_slice(&[0xff; 12]);
        assert!(list(v).is_err());
        let mut v = archive(&[("a", b'0', vec![1; 10])]);
        v[124..136].copy_from_slice(b"12x4\0\0\0\0\0\0\0\0");
        assert!(list(v).is_err());
        // Not a tar header after the first member.
        let mut v = archive(&[("a", b'0', vec![1; 10]), ("b", b'0', vec![2; 10])]);
        v[1024 + 257] = b'X';
        assert!(list(v).is_err());
        // Many members: capped.
        let many: Vec<(&str, u8, Vec<u8>)> =
            (0..MAX_MEMBERS + 1).map(|_| ("f", b'0', vec![])).collect();
        assert!(list(archive(&many)).is_err());
    }
}
