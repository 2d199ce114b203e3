//! FAT12/16/32 through the `fatfs` crate.
//!
//! Two guards wrap fatfs for hostile images: name lookups iterate
//! directories here (capped at FAT's own 65,536-entry limit) instead of
//! using fatfs's path walk, and every operation runs under a read budget so
//! a cyclic cluster chain ends in an error instead of a hang; a file's reads
//! are also counted per cluster ([`ChainWatch`]), so a chain that loops back
//! is an error even when the file's declared size fits the volume.
//!
//! fatfs 0.3 also does unchecked arithmetic on some on-disk values (a
//! directory entry whose first cluster is 0 or 1 underflows `cluster - 2`;
//! found by the `fs_fat` fuzz target). Entry points into fatfs therefore run
//! under [`contain`], which turns such a panic into a `Corrupt` error.

use crate::block_cache::BlockCache;
use crate::detect::FsKind;
use crate::error::FsError;
use crate::path::NodePath;
use crate::{DirEntry, FileSystem, FileType, Metadata};
use bootproof_image::ReadAt;
use std::cell::Cell;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::rc::Rc;
use std::sync::Arc;

/// The FAT specification's limit on entries in one directory.
const MAX_DIR_ENTRIES: usize = 65_536;
/// Bytes one directory listing may read: its 65,536 entries of 32 bytes,
/// twice over for the FAT sectors fatfs reads to follow the chain. A
/// chain looping through deleted entries (which count toward no limit)
/// ends here, not after twice the volume (a `fs_fat` fuzz timeout: 2 GB
/// read for one listing of a 1 GiB volume).
const DIR_READ_BUDGET: u64 = 4 << 20;
/// Bytes all directory listings of one volume may read together: twice
/// the volume, and at least 8 MiB. Paths are resolved from the root
/// on every call (fatfs hands out no directory handles to cache), so a
/// crafted volume of cross-linked 65,536-entry directories made a scan
/// re-read them for minutes (an `open_image` fuzz finding). Scaling with
/// the volume keeps that linear in the input while a real volume's full
/// walk (every file opened, each open re-listing its parents up to the
/// entry) fits: the read-back fixtures' walk of a 32 MiB volume with a
/// 300-entry directory reads 28 MB (a flat 16 MiB stopped it).
fn volume_dir_budget(volume: u64) -> u64 {
    volume.saturating_mul(2).max(8 << 20)
}

/// fatfs wants Read + Write + Seek; this serves reads from a [`ReadAt`],
/// refuses every write, and charges reads against a shared budget.
struct FatIo {
    /// The volume, with a few blocks cached for fatfs's small reads.
    dev: BlockCache,
    pos: u64,
    budget: Rc<Cell<u64>>,
    geometry: Geometry,
    /// Set while a file's data is read (see [`ChainWatch`]).
    watch: Rc<std::cell::RefCell<Option<ChainWatch>>>,
}

impl Read for FatIo {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let size = self.dev.size();
        let n = (size.saturating_sub(self.pos)).min(buf.len() as u64) as usize;
        let left = self.budget.get();
        if n as u64 > left {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "read budget exhausted: a cluster chain loops (corrupt FAT)",
            ));
        }
        self.budget.set(left - n as u64);
        if let Some(w) = self.watch.borrow_mut().as_mut() {
            w.record(self.geometry, self.pos, n as u64)?;
        }
        self.dev.read_at(self.pos, &mut buf[..n])?;
        self.pos += n as u64;
        Ok(n)
    }
}

impl Write for FatIo {
    fn write(&mut self, _: &[u8]) -> io::Result<usize> {
        Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            "bootproof opens images read-only",
        ))
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Seek for FatIo {
    fn seek(&mut self, pos: SeekFrom) -> io::Result<u64> {
        let new = match pos {
            SeekFrom::Start(p) => Some(p),
            SeekFrom::End(d) => self.dev.size().checked_add_signed(d),
            SeekFrom::Current(d) => self.pos.checked_add_signed(d),
        };
        self.pos =
            new.ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "seek before start"))?;
        Ok(self.pos)
    }
}

type FatFs = fatfs::FileSystem<FatIo>;
type FatDir<'a> = fatfs::Dir<'a, FatIo>;
type FatEntry<'a> = fatfs::DirEntry<'a, FatIo>;

/// An opened FAT volume.
pub(crate) struct Fat {
    fs: FatFs,
    kind: FsKind,
    /// What is left of [`volume_dir_budget`].
    dir_bytes_left: Cell<u64>,
    watch: Rc<std::cell::RefCell<Option<ChainWatch>>>,
    budget: Rc<Cell<u64>>,
    budget_per_op: u64,
    /// The volume's size in bytes.
    size: u64,
}

fn le16(b: &[u8], at: usize) -> u32 {
    u32::from(u16::from_le_bytes([b[at], b[at + 1]]))
}
fn le32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}

/// Recognises a FAT boot sector by a plausible BPB and classifies it by
/// cluster count (the only rule the FAT specification accepts).
pub(crate) fn probe_bpb(dev: &dyn ReadAt) -> Result<Option<FsKind>, FsError> {
    Ok(geometry(dev)?.map(|g| g.kind))
}

/// Where a FAT volume's clusters are: what the chain-loop guard needs.
#[derive(Debug, Clone, Copy)]
struct Geometry {
    kind: FsKind,
    /// Byte offset of cluster 2.
    data_start: u64,
    /// Bytes per cluster.
    cluster_bytes: u64,
}

fn geometry(dev: &dyn ReadAt) -> Result<Option<Geometry>, FsError> {
    if dev.size() < 512 {
        return Ok(None);
    }
    let mut b = [0u8; 512];
    dev.read_at(0, &mut b)?;
    if b[510] != 0x55 || b[511] != 0xaa || !matches!(b[0], 0xeb | 0xe9) {
        return Ok(None);
    }
    let bps = le16(&b, 11);
    let spc = u32::from(b[13]);
    let reserved = le16(&b, 14);
    let fats = u32::from(b[16]);
    let root_entries = le16(&b, 17);
    let total = if le16(&b, 19) != 0 {
        le16(&b, 19)
    } else {
        le32(&b, 32)
    };
    let fat_size = if le16(&b, 22) != 0 {
        le16(&b, 22)
    } else {
        le32(&b, 36)
    };
    if ![512, 1024, 2048, 4096].contains(&bps)
        || spc == 0
        || !spc.is_power_of_two()
        || reserved == 0
        || fats == 0
        || fat_size == 0
    {
        return Ok(None);
    }
    let root_sectors = (root_entries * 32).div_ceil(bps);
    let meta =
        u64::from(reserved) + u64::from(fats) * u64::from(fat_size) + u64::from(root_sectors);
    let Some(data) = u64::from(total).checked_sub(meta) else {
        return Ok(None);
    };
    let clusters = data / u64::from(spc);
    let kind = if clusters < 4085 {
        FsKind::Fat12
    } else if clusters < 65525 {
        FsKind::Fat16
    } else {
        FsKind::Fat32
    };
    Ok(Some(Geometry {
        kind,
        data_start: meta * u64::from(bps),
        cluster_bytes: u64::from(spc) * u64::from(bps),
    }))
}

/// Bytes read per data cluster while one file is read. A file's chain
/// visits each cluster once, so reading more than a cluster's worth from
/// one cluster means the chain loops: an error, instead of the loop's
/// bytes repeated up to the file's declared size.
#[derive(Debug, Default)]
struct ChainWatch {
    bytes: std::collections::HashMap<u64, u64>,
}

impl ChainWatch {
    fn record(&mut self, g: Geometry, pos: u64, n: u64) -> io::Result<()> {
        let Some(mut rel) = pos.checked_sub(g.data_start) else {
            return Ok(()); // the FAT itself, read as often as fatfs needs
        };
        let end = rel + n;
        while rel < end {
            let cluster = rel / g.cluster_bytes;
            let take = ((cluster + 1) * g.cluster_bytes).min(end) - rel;
            let seen = self.bytes.entry(cluster).or_default();
            *seen += take;
            if *seen > g.cluster_bytes {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!(
                        "the file's cluster chain loops (cluster {} read twice)",
                        cluster + 2
                    ),
                ));
            }
            rel += take;
        }
        Ok(())
    }
}

fn io_err(e: io::Error) -> FsError {
    if e.kind() == io::ErrorKind::InvalidData || e.kind() == io::ErrorKind::UnexpectedEof {
        FsError::corrupt(FsKind::Fat32, e.to_string())
    } else {
        FsError::Io(e)
    }
}

/// Runs fatfs code, converting a panic inside fatfs into a corruption
/// error (see the module docs). The volume's state is only `RefCell`s over
/// a read-only reader, so a later call after a contained panic is safe.
fn contain<T>(f: impl FnOnce() -> Result<T, FsError>) -> Result<T, FsError> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).unwrap_or_else(|_| {
        Err(FsError::corrupt(
            FsKind::Fat32,
            "malformed FAT structure (fatfs rejected it)",
        ))
    })
}

/// FAT's case-insensitive name comparison, without allocating (a lookup
/// compares against every entry of a directory).
fn names_equal(a: &str, b: &[u8]) -> bool {
    match std::str::from_utf8(b) {
        Ok(b) if a.is_ascii() && b.is_ascii() => a.eq_ignore_ascii_case(b),
        Ok(b) => a
            .chars()
            .flat_map(char::to_uppercase)
            .eq(b.chars().flat_map(char::to_uppercase)),
        Err(_) => false,
    }
}

/// Whether `e` is named `name`, by its long or its short name.
fn matches(e: &FatEntry<'_>, name: &[u8]) -> bool {
    names_equal(&e.file_name(), name) || names_equal(&e.short_file_name(), name)
}

impl Fat {
    pub(crate) fn open(dev: Arc<dyn ReadAt>, kind: FsKind) -> Result<Fat, FsError> {
        let size = dev.size();
        let budget_per_op = size.saturating_mul(2).saturating_add(16 << 20);
        let budget = Rc::new(Cell::new(budget_per_op));
        let geometry =
            geometry(&*dev)?.ok_or_else(|| FsError::corrupt(kind, "no FAT boot sector"))?;
        let watch = Rc::new(std::cell::RefCell::new(None));
        let io = FatIo {
            dev: BlockCache::new(dev),
            pos: 0,
            budget: Rc::clone(&budget),
            geometry,
            watch: Rc::clone(&watch),
        };
        let options = fatfs::FsOptions::new().update_accessed_date(false);
        let fs = contain(|| {
            fatfs::FileSystem::new(io, options)
                .map_err(|e| FsError::corrupt(kind, format!("boot sector rejected: {e}")))
        })?;
        Ok(Fat {
            fs,
            kind,
            dir_bytes_left: Cell::new(volume_dir_budget(size)),
            watch,
            budget,
            budget_per_op,
            size,
        })
    }

    fn reset_budget(&self) {
        self.budget.set(self.budget_per_op);
    }

    /// A directory's entries, all of them, under the listing budgets.
    fn entries<'a>(&self, dir: &FatDir<'a>) -> Result<Vec<FatEntry<'a>>, FsError> {
        self.scan(dir, None)
    }

    /// The entry named `name` (long or short, case-insensitive), reading
    /// the directory only up to it: a walk opening each file of a large
    /// directory reads half as much as with whole listings.
    fn find<'a>(&self, dir: &FatDir<'a>, name: &[u8]) -> Result<Option<FatEntry<'a>>, FsError> {
        let mut seen = self.scan(dir, Some(name))?;
        Ok(seen.pop().filter(|e| matches(e, name)))
    }

    /// Reads `dir` under the per-listing and per-volume budgets, stopping
    /// after the entry named `until` when one is given.
    fn scan<'a>(
        &self,
        dir: &FatDir<'a>,
        until: Option<&[u8]>,
    ) -> Result<Vec<FatEntry<'a>>, FsError> {
        let volume_spent = || {
            FsError::corrupt(
                self.kind,
                format!(
                    "directory listings read over {} MiB of this {}-byte volume \
                     (cross-linked directories?)",
                    volume_dir_budget(self.size) >> 20,
                    self.size
                ),
            )
        };
        let left = self.dir_bytes_left.get();
        if left == 0 {
            return Err(volume_spent());
        }
        let per_listing = DIR_READ_BUDGET.min(self.budget_per_op);
        let budget = per_listing.min(left);
        self.budget.set(budget);
        let r = contain(|| self.scan_unguarded(dir, until));
        let used = budget.saturating_sub(self.budget.get());
        self.dir_bytes_left.set(left.saturating_sub(used));
        match r {
            Err(_) if budget < per_listing && used >= budget => Err(volume_spent()),
            r => r,
        }
    }

    fn scan_unguarded<'a>(
        &self,
        dir: &FatDir<'a>,
        until: Option<&[u8]>,
    ) -> Result<Vec<FatEntry<'a>>, FsError> {
        let mut out = Vec::new();
        for e in dir.iter() {
            let e = e.map_err(io_err)?;
            let name = e.short_file_name_as_bytes();
            if name == b"." || name == b".." {
                continue;
            }
            if out.len() >= MAX_DIR_ENTRIES {
                return Err(FsError::corrupt(
                    self.kind,
                    "directory exceeds FAT's 65,536-entry limit (cyclic cluster chain?)",
                ));
            }
            let found = until.is_some_and(|name| matches(&e, name));
            out.push(e);
            if found {
                break;
            }
        }
        Ok(out)
    }

    /// Finds the entry for a non-root path (case-insensitive, long or short name).
    fn lookup(&self, path: &NodePath) -> Result<FatEntry<'_>, FsError> {
        self.reset_budget();
        let mut dir = self.fs.root_dir();
        let comps = path.components();
        for (i, name) in comps.iter().enumerate() {
            let entry = self
                .find(&dir, name)?
                .ok_or_else(|| FsError::NotFound(path.to_string()))?;
            if i + 1 == comps.len() {
                return Ok(entry);
            }
            if !entry.is_dir() {
                return Err(FsError::NotADirectory(path.to_string()));
            }
            dir = entry.to_dir();
        }
        unreachable!("lookup is called with a non-root path")
    }

    fn dir(&self, path: &NodePath) -> Result<FatDir<'_>, FsError> {
        if path.is_root() {
            self.reset_budget();
            return Ok(self.fs.root_dir());
        }
        let e = self.lookup(path)?;
        if !e.is_dir() {
            return Err(FsError::NotADirectory(path.to_string()));
        }
        Ok(e.to_dir())
    }
}

/// Reads a FAT file under the volume's read budget, watching its chain.
struct FatReader<'a> {
    file: fatfs::File<'a, FatIo>,
    fat: &'a Fat,
    /// This file's clusters so far (installed in the I/O layer while it
    /// reads, so files read in turn keep separate accounts).
    chain: Option<ChainWatch>,
}

impl Read for FatReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.fat.reset_budget();
        *self.fat.watch.borrow_mut() = self.chain.take();
        let r = contain(|| self.file.read(buf).map_err(io_err));
        self.chain = self.fat.watch.borrow_mut().take();
        r.map_err(FsError::into_io)
    }
}

impl FileSystem for Fat {
    fn kind(&self) -> FsKind {
        self.kind
    }

    fn label(&self) -> Option<String> {
        self.budget.set(DIR_READ_BUDGET.min(self.budget_per_op));
        let from_root = contain(|| Ok(self.fs.read_volume_label_from_root_dir().ok().flatten()))
            .ok()
            .flatten();
        let label = from_root.unwrap_or_else(|| self.fs.volume_label());
        let label = label.trim_end().to_string();
        (!label.is_empty() && label != "NO NAME").then_some(label)
    }

    fn uuid(&self) -> Option<String> {
        let id = self.fs.volume_id();
        Some(format!("{:04X}-{:04X}", id >> 16, id & 0xffff))
    }

    fn lstat(&self, path: &NodePath) -> Result<Metadata, FsError> {
        if path.is_root() {
            return Ok(Metadata {
                file_type: FileType::Dir,
                size: 0,
                mode: None,
                uid: None,
                gid: None,
                mtime: None,
                inode: None,
            });
        }
        let e = self.lookup(path)?;
        let m = e.modified();
        let days = crate::days_from_civil(
            i64::from(m.date.year),
            i64::from(m.date.month),
            i64::from(m.date.day),
        );
        Ok(Metadata {
            file_type: if e.is_dir() {
                FileType::Dir
            } else {
                FileType::File
            },
            size: if e.is_dir() { 0 } else { e.len() },
            mode: None,
            uid: None,
            gid: None,
            mtime: Some(
                days * 86400
                    + i64::from(m.time.hour) * 3600
                    + i64::from(m.time.min) * 60
                    + i64::from(m.time.sec),
            ),
            inode: None,
        })
    }

    fn read_dir(&self, path: &NodePath) -> Result<Vec<DirEntry>, FsError> {
        let dir = self.dir(path)?;
        Ok(self
            .entries(&dir)?
            .into_iter()
            .map(|e| DirEntry {
                name: e.file_name().into_bytes(),
                file_type: if e.is_dir() {
                    FileType::Dir
                } else {
                    FileType::File
                },
            })
            .collect())
    }

    fn read_link(&self, path: &NodePath) -> Result<Vec<u8>, FsError> {
        Err(FsError::NotASymlink(path.to_string()))
    }

    fn open(&self, path: &NodePath) -> Result<Box<dyn Read + '_>, FsError> {
        if path.is_root() {
            return Err(FsError::IsADirectory("/".into()));
        }
        let e = self.lookup(path)?;
        if e.is_dir() {
            return Err(FsError::IsADirectory(path.to_string()));
        }
        // A file cannot hold more than its volume: a larger declared size
        // is a crafted entry (with a looping cluster chain, fatfs would
        // stream the loop up to it, gigabytes from a small image).
        let volume = self.size;
        if e.len() > volume {
            return Err(FsError::corrupt(
                self.kind,
                format!(
                    "{path}: {} bytes declared on a {volume}-byte volume",
                    e.len()
                ),
            ));
        }
        Ok(Box::new(FatReader {
            file: e.to_file(),
            fat: self,
            chain: Some(ChainWatch::default()),
        }))
    }
}
