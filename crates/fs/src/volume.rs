//! A filesystem plus path resolution: the `std::fs`-like API callers use.

use crate::detect::{probe, FsKind};
use crate::error::FsError;
use crate::path::NodePath;
use crate::{DirEntry, FileSystem, FileType, Metadata};
use bootproof_image::ReadAt;
use std::io::Read;
use std::sync::Arc;

/// Symlinks followed while resolving one path (Linux uses 40).
pub const MAX_SYMLINK_FOLLOWS: usize = 40;
/// Longest path, in components, accepted after expansion.
const MAX_COMPONENTS: usize = 4096;
/// Default cap for [`Volume::read`]: a kernel fits; larger files (initrds)
/// are streamed through [`Volume::open`] instead of held.
pub const DEFAULT_READ_LIMIT: u64 = 256 << 20;

/// An opened filesystem with symlink-aware, image-confined path handling.
pub struct Volume {
    fs: Box<dyn FileSystem>,
}

/// Detects the filesystem on `dev` and opens it. `Ok(None)` when no
/// supported filesystem is there (the kind is still reported by [`probe`]).
pub fn open_volume(dev: Arc<dyn ReadAt>) -> Result<Option<Volume>, FsError> {
    let kind = probe(&*dev)?;
    open_as(kind, dev)
}

/// Opens `dev` as the given kind without probing (for callers that know,
/// and for fuzzing each parser directly). `Ok(None)` for kinds that are
/// recognised but not readable.
pub fn open_as(kind: FsKind, dev: Arc<dyn ReadAt>) -> Result<Option<Volume>, FsError> {
    let fs: Box<dyn FileSystem> = match kind {
        FsKind::Fat12 | FsKind::Fat16 | FsKind::Fat32 => {
            Box::new(crate::fat::Fat::open(dev, kind)?)
        }
        FsKind::Ext2 | FsKind::Ext3 | FsKind::Ext4 => Box::new(crate::ext4::Ext::open(dev, kind)?),
        FsKind::Xfs => crate::xfs::Xfs::open(dev)?,
        FsKind::Btrfs => crate::btrfs::Btrfs::open(dev)?,
        FsKind::Iso9660 => crate::iso9660::Iso9660::open(dev)?,
        _ => return Ok(None),
    };
    Ok(Some(Volume { fs }))
}

fn split(path: &[u8]) -> impl DoubleEndedIterator<Item = &[u8]> {
    path.split(|&b| b == b'/').filter(|c| !c.is_empty())
}

impl Volume {
    /// Wraps an already-opened filesystem.
    pub fn new(fs: Box<dyn FileSystem>) -> Volume {
        Volume { fs }
    }

    /// The underlying filesystem.
    pub fn fs(&self) -> &dyn FileSystem {
        &*self.fs
    }

    /// Which filesystem this is.
    pub fn kind(&self) -> FsKind {
        self.fs.kind()
    }

    /// Resolves `path` (absolute or relative to the root) to a symlink-free
    /// path. Symlink targets are interpreted inside this filesystem: an
    /// absolute target restarts at *this* root, `..` stops at the root, so
    /// nothing resolves outside the image. Follows a final symlink when
    /// `follow_last`.
    pub fn resolve(&self, path: &[u8], follow_last: bool) -> Result<NodePath, FsError> {
        let display = || String::from_utf8_lossy(path).into_owned();
        let mut pending: Vec<Vec<u8>> = split(path).rev().map(<[u8]>::to_vec).collect();
        let mut current: Vec<Vec<u8>> = Vec::new();
        let mut follows = 0;
        while let Some(name) = pending.pop() {
            match name.as_slice() {
                b"." => continue,
                b".." => {
                    current.pop();
                    continue;
                }
                _ => {}
            }
            current.push(name);
            let here = NodePath::from_components(current.clone());
            let meta = self.fs.lstat(&here).map_err(|e| match e {
                FsError::NotFound(_) => FsError::NotFound(display()),
                other => other,
            })?;
            let is_last = pending.is_empty();
            match meta.file_type {
                FileType::Symlink if !is_last || follow_last => {
                    follows += 1;
                    if follows > MAX_SYMLINK_FOLLOWS {
                        return Err(FsError::SymlinkLoop(display()));
                    }
                    let target = self.fs.read_link(&here)?;
                    current.pop();
                    if target.first() == Some(&b'/') {
                        current.clear();
                    }
                    pending.extend(split(&target).rev().map(<[u8]>::to_vec));
                    if pending.len() + current.len() > MAX_COMPONENTS {
                        return Err(FsError::SymlinkLoop(display()));
                    }
                }
                FileType::Dir => {}
                _ if !is_last => return Err(FsError::NotADirectory(here.to_string())),
                _ => {}
            }
        }
        Ok(NodePath::from_components(current))
    }

    /// Metadata, following symlinks (like `std::fs::metadata`).
    pub fn metadata(&self, path: &[u8]) -> Result<Metadata, FsError> {
        self.fs.lstat(&self.resolve(path, true)?)
    }

    /// Metadata of the entry itself (like `std::fs::symlink_metadata`).
    pub fn symlink_metadata(&self, path: &[u8]) -> Result<Metadata, FsError> {
        self.fs.lstat(&self.resolve(path, false)?)
    }

    /// Whether `path` exists (following symlinks). Errors other than "not
    /// found" are still errors.
    pub fn exists(&self, path: &[u8]) -> Result<bool, FsError> {
        match self.metadata(path) {
            Ok(_) => Ok(true),
            Err(FsError::NotFound(_) | FsError::NotADirectory(_)) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// The symlink-free absolute path (like `std::fs::canonicalize`).
    pub fn canonicalize(&self, path: &[u8]) -> Result<NodePath, FsError> {
        self.resolve(path, true)
    }

    /// Entries of a directory, sorted by name.
    pub fn read_dir(&self, path: &[u8]) -> Result<Vec<DirEntry>, FsError> {
        let p = self.resolve(path, true)?;
        let meta = self.fs.lstat(&p)?;
        if meta.file_type != FileType::Dir {
            return Err(FsError::NotADirectory(p.to_string()));
        }
        let mut entries = self.fs.read_dir(&p)?;
        entries.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(entries)
    }

    /// Target of a symlink, as stored.
    pub fn read_link(&self, path: &[u8]) -> Result<Vec<u8>, FsError> {
        let p = self.resolve(path, false)?;
        if self.fs.lstat(&p)?.file_type != FileType::Symlink {
            return Err(FsError::NotASymlink(p.to_string()));
        }
        self.fs.read_link(&p)
    }

    /// A sequential reader and the size of the regular file at `path`
    /// (following symlinks).
    pub fn open(&self, path: &[u8]) -> Result<(Box<dyn Read + '_>, u64), FsError> {
        let p = self.resolve(path, true)?;
        let meta = self.fs.lstat(&p)?;
        match meta.file_type {
            FileType::File => Ok((self.fs.open(&p)?, meta.size)),
            FileType::Dir => Err(FsError::IsADirectory(p.to_string())),
            _ => Err(FsError::NotAFile(p.to_string())),
        }
    }

    /// The whole file, refusing files over `limit` bytes before allocating.
    pub fn read_limited(&self, path: &[u8], limit: u64) -> Result<Vec<u8>, FsError> {
        let (mut r, size) = self.open(path)?;
        if size > limit {
            return Err(FsError::TooLarge {
                path: String::from_utf8_lossy(path).into_owned(),
                size,
                limit,
            });
        }
        // Grown as bytes arrive: the declared size only caps the read.
        let mut out = Vec::with_capacity(size.min(1 << 20) as usize);
        r.by_ref()
            .take(size)
            .read_to_end(&mut out)
            .map_err(FsError::Io)?;
        if (out.len() as u64) < size {
            return Err(FsError::corrupt(
                self.kind(),
                format!(
                    "{}: file data ends after {} of {size} bytes",
                    String::from_utf8_lossy(path),
                    out.len()
                ),
            ));
        }
        Ok(out)
    }

    /// The whole file, up to [`DEFAULT_READ_LIMIT`].
    pub fn read(&self, path: &[u8]) -> Result<Vec<u8>, FsError> {
        self.read_limited(path, DEFAULT_READ_LIMIT)
    }
}
