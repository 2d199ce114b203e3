//! A read-only XFS (v4 and v5) reader.
//!
//! No maintained Rust crate reads XFS, and RHEL-family images (Alma, Rocky,
//! CentOS Stream, Amazon Linux, RHCOS) keep `/boot` and `/` on it. This
//! reader covers what those images use: inodes in all three fork formats
//! (local, extent list, extent B+tree), directories in every form
//! (shortform in the inode; block, leaf and node forms, whose entries all
//! live in data blocks below the 32 GiB leaf offset), and local and remote
//! symlinks. Realtime files are refused as unsupported.
//!
//! Layout per `fs/xfs/libxfs/xfs_format.h` and `xfs_da_format.h` in Linux.
//! Every number read from disk is range-checked before use; B+tree walks
//! carry a visited set and depth limit; directory scans are bounded.

mod bmap;
mod dir;
mod inode;
mod superblock;

use crate::detect::FsKind;
use crate::error::FsError;
use crate::path::NodePath;
use crate::{DirEntry, FileSystem, Metadata};
use bootproof_image::ReadAt;
use inode::{DataFork, Inode};
use std::collections::HashMap;
use std::io::{self, Read};
use std::sync::{Arc, Mutex};
use superblock::Superblock;

/// Directories whose entries stay cached (lookups walk from the root).
const DIR_CACHE: usize = 64;

pub(crate) fn corrupt(detail: impl Into<String>) -> FsError {
    FsError::corrupt(FsKind::Xfs, detail)
}

/// An opened XFS filesystem.
pub(crate) struct Xfs {
    dev: Arc<dyn ReadAt>,
    sb: Superblock,
    dir_cache: Mutex<HashMap<u64, Arc<Vec<dir::Entry>>>>,
}

impl Xfs {
    pub(crate) fn open(dev: Arc<dyn ReadAt>) -> Result<Box<dyn FileSystem>, FsError> {
        let sb = Superblock::read(&*dev)?;
        Ok(Box::new(Xfs {
            dev,
            sb,
            dir_cache: Mutex::new(HashMap::new()),
        }))
    }

    fn read(&self, offset: u64, buf: &mut [u8]) -> Result<(), FsError> {
        self.dev.read_at(offset, buf).map_err(|e| {
            if e.kind() == io::ErrorKind::UnexpectedEof {
                corrupt(format!(
                    "structure at byte {offset} lies past the end of the device"
                ))
            } else {
                FsError::Io(e)
            }
        })
    }

    fn inode(&self, ino: u64) -> Result<Inode, FsError> {
        let offset = self.sb.inode_offset(ino)?;
        let mut raw = vec![0u8; usize::from(self.sb.inode_size)];
        self.read(offset, &mut raw)?;
        Inode::parse(&self.sb, ino, raw)
    }

    fn entries(&self, dir: &Inode) -> Result<Arc<Vec<dir::Entry>>, FsError> {
        if let Some(e) = self.dir_cache.lock().expect("dir cache").get(&dir.ino) {
            return Ok(Arc::clone(e));
        }
        let entries = Arc::new(dir::read_entries(self, dir)?);
        let mut cache = self.dir_cache.lock().expect("dir cache");
        if cache.len() >= DIR_CACHE {
            cache.clear();
        }
        cache.insert(dir.ino, Arc::clone(&entries));
        Ok(entries)
    }

    /// Walks a resolved path from the root inode.
    fn lookup(&self, path: &NodePath) -> Result<Inode, FsError> {
        let mut node = self.inode(self.sb.root_ino)?;
        for name in path.components() {
            if !node.is_dir() {
                return Err(FsError::NotADirectory(path.to_string()));
            }
            let ino = self
                .entries(&node)?
                .iter()
                .find(|e| e.name == *name)
                .map(|e| e.ino)
                .ok_or_else(|| FsError::NotFound(path.to_string()))?;
            node = self.inode(ino)?;
        }
        Ok(node)
    }

    /// Reads `buf.len()` bytes of a file's data fork starting at `offset`
    /// (holes and unwritten extents read as zeros).
    fn read_file_at(
        &self,
        ino: &Inode,
        extents: &[bmap::Extent],
        offset: u64,
        buf: &mut [u8],
    ) -> Result<(), FsError> {
        if let DataFork::Local(data) = &ino.fork {
            let start = usize::try_from(offset)
                .unwrap_or(usize::MAX)
                .min(data.len());
            let n = buf.len().min(data.len() - start);
            buf[..n].copy_from_slice(&data[start..start + n]);
            buf[n..].fill(0);
            return Ok(());
        }
        let bs = self.sb.block_size;
        let mut done = 0usize;
        while done < buf.len() {
            let pos = offset + done as u64;
            let fblock = pos / bs;
            let within = pos % bs;
            let idx = extents.partition_point(|e| e.file_block + e.count <= fblock);
            let n;
            match extents.get(idx).filter(|e| e.file_block <= fblock) {
                Some(e) => {
                    let run = (e.file_block + e.count - fblock) * bs - within;
                    n = (run.min((buf.len() - done) as u64)) as usize;
                    if e.unwritten {
                        buf[done..done + n].fill(0);
                    } else {
                        let disk = self
                            .sb
                            .fsblock_to_byte(e.disk_block + (fblock - e.file_block))?
                            + within;
                        self.read(disk, &mut buf[done..done + n])?;
                    }
                }
                None => {
                    // A hole: zeros up to the next extent.
                    let next = extents.get(idx).map_or(u64::MAX, |e| e.file_block * bs);
                    n = (next.saturating_sub(pos)).min((buf.len() - done) as u64) as usize;
                    buf[done..done + n].fill(0);
                }
            }
            if n == 0 {
                return Err(corrupt(format!(
                    "inode {}: extent map makes no progress",
                    ino.ino
                )));
            }
            done += n;
        }
        Ok(())
    }
}

/// Sequential reader over one XFS file.
struct FileReader<'a> {
    fs: &'a Xfs,
    inode: Inode,
    extents: Vec<bmap::Extent>,
    pos: u64,
}

impl Read for FileReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = self.inode.size.saturating_sub(self.pos);
        let n = (buf.len() as u64).min(left).min(1 << 20) as usize;
        if n == 0 {
            return Ok(0);
        }
        self.fs
            .read_file_at(&self.inode, &self.extents, self.pos, &mut buf[..n])
            .map_err(FsError::into_io)?;
        self.pos += n as u64;
        Ok(n)
    }
}

impl FileSystem for Xfs {
    fn kind(&self) -> FsKind {
        FsKind::Xfs
    }

    fn label(&self) -> Option<String> {
        (!self.sb.label.is_empty()).then(|| self.sb.label.clone())
    }

    fn uuid(&self) -> Option<String> {
        Some(crate::format_uuid(&self.sb.uuid))
    }

    fn lstat(&self, path: &NodePath) -> Result<Metadata, FsError> {
        Ok(self.lookup(path)?.metadata())
    }

    fn read_dir(&self, path: &NodePath) -> Result<Vec<DirEntry>, FsError> {
        let node = self.lookup(path)?;
        if !node.is_dir() {
            return Err(FsError::NotADirectory(path.to_string()));
        }
        let entries = self.entries(&node)?;
        let mut out = Vec::with_capacity(entries.len());
        for e in entries.iter() {
            // v4 without ftype: the type lives only in the child inode.
            let file_type = match e.file_type {
                Some(t) => t,
                None => self.inode(e.ino)?.file_type(),
            };
            out.push(DirEntry {
                name: e.name.clone(),
                file_type,
            });
        }
        Ok(out)
    }

    fn read_link(&self, path: &NodePath) -> Result<Vec<u8>, FsError> {
        let node = self.lookup(path)?;
        if node.file_type() != crate::FileType::Symlink {
            return Err(FsError::NotASymlink(path.to_string()));
        }
        // XFS_SYMLINK_MAXLEN
        if node.size == 0 || node.size > 1024 {
            return Err(corrupt(format!(
                "symlink inode {} has length {}",
                node.ino, node.size
            )));
        }
        if let DataFork::Local(data) = &node.fork {
            return Ok(data[..(node.size as usize).min(data.len())].to_vec());
        }
        let extents = bmap::extents(self, &node)?;
        inode::read_remote_symlink(self, &node, &extents)
    }

    fn open(&self, path: &NodePath) -> Result<Box<dyn Read + '_>, FsError> {
        let node = self.lookup(path)?;
        if node.realtime {
            return Err(FsError::unsupported(
                FsKind::Xfs,
                format!("{path} is on the realtime device"),
            ));
        }
        let extents = match &node.fork {
            DataFork::Local(_) => Vec::new(),
            _ => bmap::extents(self, &node)?,
        };
        Ok(Box::new(FileReader {
            fs: self,
            inode: node,
            extents,
            pos: 0,
        }))
    }
}
