//! Directory records (ECMA-119 §9.1) and their Rock Ridge / SUSP entries.

use super::{corrupt, le32, Iso9660};
use crate::error::FsError;
use crate::FileType;

/// SUSP continuation areas followed for one record.
const MAX_CONTINUATIONS: usize = 16;

/// Which naming the directory tree uses.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Names {
    /// ISO9660 level 1–3 names (`NAME.EXT;1`).
    Plain,
    /// Joliet: UCS-2 big-endian names.
    Joliet,
    /// Rock Ridge on the primary tree, with the SUSP skip length.
    RockRidge(usize),
}

/// One directory record, decoded.
#[derive(Debug, Clone)]
pub(crate) struct Record {
    pub name: Vec<u8>,
    pub lba: u64,
    pub size: u32,
    pub is_dir: bool,
    pub mode: Option<u32>,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    pub mtime: i64,
    pub symlink: Option<Vec<u8>>,
    /// Rock Ridge "CL": this entry is a directory relocated to that block.
    pub relocated_to: Option<u64>,
    /// Rock Ridge "RE": the relocated copy, hidden from listings.
    pub hidden: bool,
    /// Further extents of a multi-extent file: (block, length).
    pub more_extents: Vec<(u64, u64)>,
    multi_extent: bool,
}

impl Record {
    pub(crate) fn file_type(&self) -> FileType {
        if self.symlink.is_some() {
            return FileType::Symlink;
        }
        match self.mode {
            Some(m) if FileType::from_mode(m) != FileType::Other => FileType::from_mode(m),
            _ if self.is_dir => FileType::Dir,
            _ => FileType::File,
        }
    }

    pub(crate) fn total_size(&self) -> u64 {
        u64::from(self.size) + self.more_extents.iter().map(|e| e.1).sum::<u64>()
    }

    /// Decodes the record at the start of `b` (without SUSP); `None` for a
    /// zero length byte (padding up to the next sector).
    pub(crate) fn parse(b: &[u8], names: Names, _skip: usize) -> Result<Option<Record>, FsError> {
        let len = usize::from(
            *b.first()
                .ok_or_else(|| corrupt("directory record truncated"))?,
        );
        if len == 0 {
            return Ok(None);
        }
        if len < 34 || len > b.len() {
            return Err(corrupt(format!("directory record of length {len}")));
        }
        let name_len = usize::from(b[32]);
        if 33 + name_len > len {
            return Err(corrupt("directory record name overruns the record"));
        }
        let raw = &b[33..33 + name_len];
        let name = match names {
            Names::Joliet => {
                let units: Vec<u16> = raw
                    .chunks_exact(2)
                    .map(|c| u16::from_be_bytes([c[0], c[1]]))
                    .collect();
                strip_version(String::from_utf16_lossy(&units).into_bytes())
            }
            _ => strip_version(raw.to_vec()),
        };
        let d = &b[18..25];
        let days = crate::days_from_civil(
            1900 + i64::from(d[0]),
            i64::from(d[1]).max(1),
            i64::from(d[2]).max(1),
        );
        let mtime = days * 86400 + i64::from(d[3]) * 3600 + i64::from(d[4]) * 60 + i64::from(d[5])
            - i64::from(d[6] as i8) * 15 * 60;
        let flags = b[25];
        Ok(Some(Record {
            name,
            lba: u64::from(le32(b, 2)),
            size: le32(b, 10),
            is_dir: flags & 0x02 != 0,
            mode: None,
            uid: None,
            gid: None,
            mtime,
            symlink: None,
            relocated_to: None,
            hidden: false,
            more_extents: Vec::new(),
            multi_extent: flags & 0x80 != 0,
        }))
    }
}

/// `NAME.EXT;1` → `NAME.EXT`; `NAME.;1` → `NAME`.
fn strip_version(mut n: Vec<u8>) -> Vec<u8> {
    if let Some(p) = n.iter().rposition(|&c| c == b';') {
        if n[p + 1..].iter().all(u8::is_ascii_digit) {
            n.truncate(p);
        }
    }
    if n.len() > 1 && n.last() == Some(&b'.') {
        n.pop();
    }
    n
}

/// Applies the Rock Ridge entries of one System Use area (following "CE"
/// continuations) to `r`.
fn apply_rock_ridge(fs: &Iso9660, mut area: Vec<u8>, r: &mut Record) -> Result<(), FsError> {
    let mut nm: Option<Vec<u8>> = None;
    let mut sl: Option<Vec<u8>> = None;
    let mut sl_continue_component = false;
    let mut hops = 0;
    loop {
        let mut next = None;
        let mut pos = 0;
        while pos + 4 <= area.len() {
            let sig = [area[pos], area[pos + 1]];
            let len = usize::from(area[pos + 2]);
            if len < 4 || pos + len > area.len() {
                break;
            }
            let e = &area[pos..pos + len];
            match &sig {
                b"PX" if len >= 36 => {
                    r.mode = Some(le32(e, 4));
                    r.uid = Some(le32(e, 20));
                    r.gid = Some(le32(e, 28));
                }
                b"NM" if len >= 5 => {
                    let flags = e[4];
                    if flags & 0x06 == 0 {
                        nm.get_or_insert_with(Vec::new).extend_from_slice(&e[5..]);
                    }
                }
                b"SL" if len >= 5 => {
                    let target = sl.get_or_insert_with(Vec::new);
                    let mut c = 5;
                    while c + 2 <= e.len() {
                        let cflags = e[c];
                        let clen = usize::from(e[c + 1]);
                        if c + 2 + clen > e.len() {
                            break;
                        }
                        if !sl_continue_component && !target.is_empty() && target != b"/" {
                            target.push(b'/');
                        }
                        if cflags & 0x08 != 0 {
                            target.clear();
                            target.push(b'/');
                        } else if cflags & 0x02 != 0 {
                            target.push(b'.');
                        } else if cflags & 0x04 != 0 {
                            target.extend_from_slice(b"..");
                        } else {
                            target.extend_from_slice(&e[c + 2..c + 2 + clen]);
                        }
                        sl_continue_component = cflags & 0x01 != 0;
                        c += 2 + clen;
                    }
                }
                b"CL" if len >= 12 => r.relocated_to = Some(u64::from(le32(e, 4))),
                b"RE" => r.hidden = true,
                b"CE" if len >= 28 => {
                    next = Some((
                        u64::from(le32(e, 4)),
                        u64::from(le32(e, 12)),
                        u64::from(le32(e, 20)),
                    ));
                }
                b"ST" => break,
                _ => {}
            }
            pos += len;
        }
        match next {
            Some((block, offset, length))
                if hops < MAX_CONTINUATIONS && length <= fs.block_size =>
            {
                hops += 1;
                let mut b = vec![0u8; length as usize];
                fs.read(block * fs.block_size + offset, &mut b)?;
                area = b;
            }
            Some(_) => {
                return Err(corrupt(
                    "Rock Ridge continuation chain too long or too large",
                ))
            }
            None => break,
        }
    }
    if let Some(n) = nm {
        r.name = n;
    }
    r.symlink = sl;
    Ok(())
}

/// Every record of a directory extent except "." and "..", multi-extent
/// files merged and relocated ("RE") entries dropped.
pub(crate) fn parse_directory(fs: &Iso9660, data: &[u8]) -> Result<Vec<Record>, FsError> {
    let mut out: Vec<Record> = Vec::new();
    let sector = fs.block_size as usize;
    let mut pos = 0;
    while pos < data.len() {
        let Some(mut r) = Record::parse(&data[pos..], fs.names, 0)? else {
            pos = (pos / sector + 1) * sector;
            continue;
        };
        let len = usize::from(data[pos]);
        let name_len = usize::from(data[pos + 32]);
        let raw_name = &data[pos + 33..pos + 33 + name_len];
        let is_dot = name_len == 1 && (raw_name[0] == 0 || raw_name[0] == 1);
        if !is_dot {
            if let super::Names::RockRidge(skip) = fs.names {
                let su = 33 + name_len + (name_len + 1) % 2 + skip;
                if su < len {
                    apply_rock_ridge(fs, data[pos + su..pos + len].to_vec(), &mut r)?;
                }
            }
            let continues = out
                .last()
                .is_some_and(|p| p.multi_extent && p.name == r.name);
            if continues {
                let prev = out.last_mut().expect("checked");
                prev.more_extents.push((r.lba, u64::from(r.size)));
                prev.multi_extent = r.multi_extent;
            } else if !r.hidden {
                out.push(r);
            }
        }
        pos += len;
    }
    Ok(out)
}
