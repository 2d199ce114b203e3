//! A read-only ISO9660 reader with Rock Ridge, Joliet and El Torito.
//!
//! Installer and live ISOs carry their EFI boot image as an El Torito entry
//! (a FAT image); bootproof exposes each entry through
//! [`FileSystem::embedded`](crate::FileSystem::embedded) so it opens as its
//! own volume. Names come from Rock Ridge when present (POSIX names, modes,
//! symlinks, relocated deep directories), else Joliet (UCS-2), else the
//! plain ISO names with their `;1` versions stripped.
//!
//! Layout per ECMA-119, IEEE P1282 (Rock Ridge) / P1281 (SUSP), the Joliet
//! specification and the El Torito specification.

mod eltorito;
mod record;

use crate::detect::FsKind;
use crate::error::FsError;
use crate::path::NodePath;
use crate::{DirEntry, Embedded, FileSystem, FileType, Metadata};
use bootproof_image::ReadAt;
use record::{Names, Record};
use std::collections::HashMap;
use std::io::{self, Read};
use std::sync::{Arc, Mutex};

const SECTOR: u64 = 2048;
/// Volume descriptors examined before giving up on a terminator.
const MAX_DESCRIPTORS: u64 = 64;
/// Largest directory read (bounds memory on hostile input).
const MAX_DIR_BYTES: u64 = 64 << 20;
const DIR_CACHE: usize = 64;

pub(crate) fn corrupt(detail: impl Into<String>) -> FsError {
    FsError::corrupt(FsKind::Iso9660, detail)
}

pub(crate) fn le32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}

/// An opened ISO9660 volume.
pub(crate) struct Iso9660 {
    dev: Arc<dyn ReadAt>,
    block_size: u64,
    root: Record,
    names: Names,
    label: String,
    uuid: Option<String>,
    boot_catalog: Option<u64>,
    dir_cache: Mutex<HashMap<u64, Arc<Vec<Record>>>>,
}

impl Iso9660 {
    pub(crate) fn open(dev: Arc<dyn ReadAt>) -> Result<Box<dyn FileSystem>, FsError> {
        let mut primary = None;
        let mut joliet = None;
        let mut boot_catalog = None;
        for i in 0..MAX_DESCRIPTORS {
            let mut d = vec![0u8; SECTOR as usize];
            dev.read_at((16 + i) * SECTOR, &mut d)
                .map_err(|_| corrupt("volume descriptor set runs past the end of the device"))?;
            if &d[1..6] != b"CD001" {
                return Err(corrupt(format!("volume descriptor {} lacks CD001", 16 + i)));
            }
            match d[0] {
                0 if d[7..30] == *b"EL TORITO SPECIFICATION" => {
                    boot_catalog = Some(u64::from(le32(&d, 0x47)))
                }
                1 if primary.is_none() => primary = Some(d),
                2 if d[88] == b'%' && d[89] == b'/' && matches!(d[90], b'@' | b'C' | b'E') => {
                    joliet = Some(d)
                }
                255 => break,
                _ => {}
            }
        }
        let pvd = primary.ok_or_else(|| corrupt("no primary volume descriptor"))?;
        let block_size = u64::from(u16::from_le_bytes([pvd[128], pvd[129]]));
        if !matches!(block_size, 512 | 1024 | 2048) {
            return Err(corrupt(format!("logical block size {block_size}")));
        }
        let label = String::from_utf8_lossy(&pvd[40..72]).trim_end().to_string();
        let date = &pvd[813..829];
        let uuid = date.iter().all(u8::is_ascii_digit).then(|| {
            let s = String::from_utf8_lossy(date);
            format!(
                "{}-{}-{}-{}-{}-{}-{}",
                &s[0..4],
                &s[4..6],
                &s[6..8],
                &s[8..10],
                &s[10..12],
                &s[12..14],
                &s[14..16]
            )
        });
        let pvd_root = Record::parse(&pvd[156..190], Names::Plain, 0)?
            .ok_or_else(|| corrupt("primary root directory record is empty"))?;
        let mut fs = Iso9660 {
            dev,
            block_size,
            root: pvd_root.clone(),
            names: Names::Plain,
            label,
            uuid,
            boot_catalog,
            dir_cache: Mutex::new(HashMap::new()),
        };
        // Rock Ridge announces itself with SUSP "SP" in the root's "." record.
        if let Some(skip) = fs.susp_skip(&pvd_root)? {
            fs.names = Names::RockRidge(skip);
        } else if let Some(svd) = joliet {
            if let Some(r) = Record::parse(&svd[156..190], Names::Joliet, 0)? {
                fs.root = r;
                fs.names = Names::Joliet;
            }
        }
        Ok(Box::new(fs))
    }

    fn read(&self, offset: u64, buf: &mut [u8]) -> Result<(), FsError> {
        self.dev.read_at(offset, buf).map_err(|e| {
            if e.kind() == io::ErrorKind::UnexpectedEof {
                corrupt(format!(
                    "extent at byte {offset} lies past the end of the device"
                ))
            } else {
                FsError::Io(e)
            }
        })
    }

    /// Reads a directory extent.
    fn dir_bytes(&self, lba: u64, len: u64) -> Result<Vec<u8>, FsError> {
        if len > MAX_DIR_BYTES {
            return Err(corrupt(format!(
                "directory at block {lba} claims {len} bytes"
            )));
        }
        let mut b = vec![0u8; len as usize];
        self.read(lba * self.block_size, &mut b)?;
        Ok(b)
    }

    /// The SUSP skip length when the root's "." record carries "SP".
    fn susp_skip(&self, root: &Record) -> Result<Option<usize>, FsError> {
        let data = self.dir_bytes(root.lba, u64::from(root.size.min(SECTOR as u32)))?;
        let len = usize::from(*data.first().unwrap_or(&0));
        if len < 34 || len > data.len() {
            return Ok(None);
        }
        let name_len = usize::from(data[32]);
        let su = 33 + name_len + (name_len + 1) % 2;
        let area = &data[su.min(len)..len];
        if area.len() >= 7 && &area[..2] == b"SP" && area[4] == 0xbe && area[5] == 0xef {
            return Ok(Some(usize::from(area[6])));
        }
        Ok(None)
    }

    /// The entries of the directory `dir` (without "." and ".."), with
    /// Rock Ridge relocations applied.
    fn entries(&self, dir: &Record) -> Result<Arc<Vec<Record>>, FsError> {
        if let Some(e) = self.dir_cache.lock().expect("dir cache").get(&dir.lba) {
            return Ok(Arc::clone(e));
        }
        let data = self.dir_bytes(dir.lba, u64::from(dir.size))?;
        let mut out = record::parse_directory(self, &data)?;
        for r in &mut out {
            if let Some(child) = r.relocated_to {
                // A "CL" entry stands for a directory moved to rr_moved.
                let head = self.dir_bytes(child, SECTOR.min(self.block_size * 4))?;
                let dot = Record::parse(&head, Names::Plain, 0)?.ok_or_else(|| {
                    corrupt(format!("relocated directory at block {child} is empty"))
                })?;
                r.lba = child;
                r.size = dot.size;
                r.is_dir = true;
                if r.mode
                    .is_none_or(|m| FileType::from_mode(m) != FileType::Dir)
                {
                    r.mode = Some(0o040755);
                }
            }
        }
        let out = Arc::new(out);
        let mut cache = self.dir_cache.lock().expect("dir cache");
        if cache.len() >= DIR_CACHE {
            cache.clear();
        }
        cache.insert(dir.lba, Arc::clone(&out));
        Ok(out)
    }

    fn lookup(&self, path: &NodePath) -> Result<Record, FsError> {
        let mut node = self.root.clone();
        for name in path.components() {
            if !node.is_dir {
                return Err(FsError::NotADirectory(path.to_string()));
            }
            node = self
                .entries(&node)?
                .iter()
                .find(|r| r.name == *name)
                .cloned()
                .ok_or_else(|| FsError::NotFound(path.to_string()))?;
        }
        Ok(node)
    }
}

/// Sequential reader over a (possibly multi-extent) file.
struct FileReader<'a> {
    fs: &'a Iso9660,
    extents: Vec<(u64, u64)>,
    index: usize,
    within: u64,
}

impl Read for FileReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while let Some(&(lba, len)) = self.extents.get(self.index) {
            if self.within >= len {
                self.index += 1;
                self.within = 0;
                continue;
            }
            let n = (buf.len() as u64).min(len - self.within).min(1 << 20) as usize;
            self.fs
                .read(lba * self.fs.block_size + self.within, &mut buf[..n])
                .map_err(FsError::into_io)?;
            self.within += n as u64;
            return Ok(n);
        }
        Ok(0)
    }
}

impl FileSystem for Iso9660 {
    fn kind(&self) -> FsKind {
        FsKind::Iso9660
    }

    fn label(&self) -> Option<String> {
        (!self.label.is_empty()).then(|| self.label.clone())
    }

    fn uuid(&self) -> Option<String> {
        self.uuid.clone()
    }

    fn lstat(&self, path: &NodePath) -> Result<Metadata, FsError> {
        let r = self.lookup(path)?;
        Ok(Metadata {
            file_type: r.file_type(),
            size: if r.file_type() == FileType::Symlink {
                r.symlink.as_ref().map_or(0, |t| t.len() as u64)
            } else if r.is_dir {
                u64::from(r.size)
            } else {
                r.total_size()
            },
            mode: r.mode.map(|m| m & 0o7777),
            uid: r.uid,
            gid: r.gid,
            mtime: Some(r.mtime),
            inode: None,
        })
    }

    fn read_dir(&self, path: &NodePath) -> Result<Vec<DirEntry>, FsError> {
        let r = self.lookup(path)?;
        if !r.is_dir {
            return Err(FsError::NotADirectory(path.to_string()));
        }
        Ok(self
            .entries(&r)?
            .iter()
            .map(|e| DirEntry {
                name: e.name.clone(),
                file_type: e.file_type(),
            })
            .collect())
    }

    fn read_link(&self, path: &NodePath) -> Result<Vec<u8>, FsError> {
        self.lookup(path)?
            .symlink
            .ok_or_else(|| FsError::NotASymlink(path.to_string()))
    }

    fn open(&self, path: &NodePath) -> Result<Box<dyn Read + '_>, FsError> {
        let r = self.lookup(path)?;
        let mut extents = vec![(r.lba, u64::from(r.size))];
        extents.extend(r.more_extents.iter().copied());
        Ok(Box::new(FileReader {
            fs: self,
            extents,
            index: 0,
            within: 0,
        }))
    }

    fn embedded(&self) -> Vec<Embedded> {
        match self.boot_catalog {
            Some(lba) => eltorito::boot_images(self, lba).unwrap_or_default(),
            None => Vec::new(),
        }
    }
}
