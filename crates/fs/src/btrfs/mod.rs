//! A read-only, single-device Btrfs reader.
//!
//! Fedora Cloud and openSUSE keep their roots on Btrfs; bootproof needs
//! `/boot`, `/etc` and `/usr/lib/modules` from them. No maintained crate
//! reads Btrfs with bounds on hostile input, so this one does: the chunk
//! map (bootstrapped from the superblock's `sys_chunk_array`), the root
//! tree, per-subvolume fs trees, inline and regular extents, holes,
//! preallocated extents, and zlib, LZO and zstd compression.
//!
//! `/` is the default subvolume (what `mount` without `subvol=` shows);
//! subvolumes inside it appear as directories and are entered
//! transparently. Multi-device filesystems (RAID0/10/5/6 across disks) are
//! refused as unsupported. Node checksums are not verified; structural
//! checks (owner, level, bytenr, item bounds) are.
//!
//! Layout per the Btrfs on-disk format documentation and
//! `include/uapi/linux/btrfs_tree.h`.

mod chunk;
mod extent;
mod items;
mod lzo;
mod superblock;
mod tree;

use crate::detect::FsKind;
use crate::error::FsError;
use crate::limits::DirBudget;
use crate::path::NodePath;
use crate::{DirEntry, FileSystem, FileType, Metadata};
use bootproof_image::ReadAt;
use items::{DirItem, InodeItem};
use std::collections::HashMap;
use std::io::{self, Read};
use std::sync::{Arc, Mutex};
use tree::{Key, Tree};

const ROOT_TREE_DIR_OBJECTID: u64 = 6;
const FS_TREE_OBJECTID: u64 = 5;
const FIRST_FREE_OBJECTID: u64 = 256;
const INODE_ITEM: u8 = 1;
const DIR_ITEM: u8 = 84;
const DIR_INDEX: u8 = 96;
const EXTENT_DATA: u8 = 108;
const ROOT_ITEM: u8 = 132;
/// Directories whose listings stay cached.
const DIR_CACHE: usize = 64;

pub(crate) fn corrupt(detail: impl Into<String>) -> FsError {
    FsError::corrupt(FsKind::Btrfs, detail)
}

/// An inode in a given subvolume tree.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct Ino {
    tree: u64,
    ino: u64,
}

/// An opened Btrfs filesystem.
pub(crate) struct Btrfs {
    reader: tree::Reader,
    root_tree: Tree,
    default: Ino,
    label: String,
    uuid: [u8; 16],
    trees: Mutex<HashMap<u64, Tree>>,
    dir_cache: Mutex<HashMap<Ino, Arc<Vec<DirItem>>>>,
}

impl Btrfs {
    pub(crate) fn open(dev: Arc<dyn ReadAt>) -> Result<Box<dyn FileSystem>, FsError> {
        let sb = superblock::Superblock::read(&*dev)?;
        let mut chunks = chunk::ChunkMap::from_sys_array(&sb)?;
        let boot = tree::Reader::new(Arc::clone(&dev), chunks.clone(), &sb);
        chunks.load_chunk_tree(
            &boot,
            &Tree {
                bytenr: sb.chunk_root,
                level: sb.chunk_root_level,
            },
        )?;
        let reader = tree::Reader::new(dev, chunks, &sb);
        let root_tree = Tree {
            bytenr: sb.root,
            level: sb.root_level,
        };
        let mut fs = Btrfs {
            reader,
            root_tree,
            default: Ino {
                tree: FS_TREE_OBJECTID,
                ino: FIRST_FREE_OBJECTID,
            },
            label: sb.label,
            uuid: sb.fsid,
            trees: Mutex::new(HashMap::new()),
            dir_cache: Mutex::new(HashMap::new()),
        };
        // The root tree's directory (objectid 6) names the default subvolume.
        let mut default = FS_TREE_OBJECTID;
        let mut budget = DirBudget::new(FsKind::Btrfs, "the root tree directory");
        fs.reader.search(
            &fs.root_tree,
            Key::new(ROOT_TREE_DIR_OBJECTID, DIR_ITEM, 0),
            Key::new(ROOT_TREE_DIR_OBJECTID, DIR_ITEM, u64::MAX),
            &mut |_, data| {
                let mut items = Vec::new();
                items::dir_items(data, &mut budget, &mut items)?;
                if let Some(item) = items.iter().find(|i| i.name == b"default") {
                    default = item.location.objectid;
                }
                Ok(true)
            },
        )?;
        fs.default = Ino {
            tree: default,
            ino: FIRST_FREE_OBJECTID,
        };
        fs.subvolume(default)?;
        Ok(Box::new(fs))
    }

    /// The fs tree of subvolume `id`, from its ROOT_ITEM in the root tree.
    fn subvolume(&self, id: u64) -> Result<Tree, FsError> {
        if let Some(t) = self.trees.lock().expect("trees").get(&id) {
            return Ok(*t);
        }
        let mut found = None;
        self.reader.search(
            &self.root_tree,
            Key::new(id, ROOT_ITEM, 0),
            Key::new(id, ROOT_ITEM, u64::MAX),
            &mut |_, data| {
                found = Some(items::root_item(data)?);
                Ok(false)
            },
        )?;
        let tree = found.ok_or_else(|| corrupt(format!("subvolume {id} has no root item")))?;
        self.trees.lock().expect("trees").insert(id, tree);
        Ok(tree)
    }

    fn inode(&self, at: Ino) -> Result<InodeItem, FsError> {
        let tree = self.subvolume(at.tree)?;
        let mut found = None;
        let key = Key::new(at.ino, INODE_ITEM, 0);
        self.reader.search(&tree, key, key, &mut |_, data| {
            found = Some(items::inode_item(data)?);
            Ok(false)
        })?;
        found.ok_or_else(|| {
            corrupt(format!(
                "inode {} of subvolume {} is missing",
                at.ino, at.tree
            ))
        })
    }

    fn entries(&self, dir: Ino) -> Result<Arc<Vec<DirItem>>, FsError> {
        if let Some(e) = self.dir_cache.lock().expect("dir cache").get(&dir) {
            return Ok(Arc::clone(e));
        }
        let tree = self.subvolume(dir.tree)?;
        let mut out = Vec::new();
        let mut budget = DirBudget::new(
            FsKind::Btrfs,
            format!("directory inode {} of subvolume {}", dir.ino, dir.tree),
        );
        self.reader.search(
            &tree,
            Key::new(dir.ino, DIR_INDEX, 0),
            Key::new(dir.ino, DIR_INDEX, u64::MAX),
            &mut |_, data| {
                items::dir_items(data, &mut budget, &mut out)?;
                Ok(true)
            },
        )?;
        let out = Arc::new(out);
        let mut cache = self.dir_cache.lock().expect("dir cache");
        if cache.len() >= DIR_CACHE {
            cache.clear();
        }
        cache.insert(dir, Arc::clone(&out));
        Ok(out)
    }

    /// Where a directory entry leads: an inode in the same tree, or the
    /// root directory of another subvolume.
    fn follow(&self, dir: Ino, item: &DirItem) -> Ino {
        if item.location.kind == ROOT_ITEM {
            Ino {
                tree: item.location.objectid,
                ino: FIRST_FREE_OBJECTID,
            }
        } else {
            Ino {
                tree: dir.tree,
                ino: item.location.objectid,
            }
        }
    }

    fn lookup(&self, path: &NodePath) -> Result<(Ino, InodeItem), FsError> {
        let mut at = self.default;
        let mut node = self.inode(at)?;
        for name in path.components() {
            if FileType::from_mode(node.mode) != FileType::Dir {
                return Err(FsError::NotADirectory(path.to_string()));
            }
            let entries = self.entries(at)?;
            let item = entries
                .iter()
                .find(|i| i.name == *name)
                .ok_or_else(|| FsError::NotFound(path.to_string()))?;
            at = self.follow(at, item);
            node = self.inode(at)?;
        }
        Ok((at, node))
    }
}

impl FileSystem for Btrfs {
    fn kind(&self) -> FsKind {
        FsKind::Btrfs
    }

    fn label(&self) -> Option<String> {
        (!self.label.is_empty()).then(|| self.label.clone())
    }

    fn uuid(&self) -> Option<String> {
        Some(crate::format_uuid(&self.uuid))
    }

    fn lstat(&self, path: &NodePath) -> Result<Metadata, FsError> {
        let (at, node) = self.lookup(path)?;
        Ok(Metadata {
            file_type: FileType::from_mode(node.mode),
            size: node.size,
            mode: Some(node.mode & 0o7777),
            uid: Some(node.uid),
            gid: Some(node.gid),
            mtime: Some(node.mtime),
            inode: Some(at.ino),
        })
    }

    fn read_dir(&self, path: &NodePath) -> Result<Vec<DirEntry>, FsError> {
        let (at, node) = self.lookup(path)?;
        if FileType::from_mode(node.mode) != FileType::Dir {
            return Err(FsError::NotADirectory(path.to_string()));
        }
        Ok(self
            .entries(at)?
            .iter()
            .map(|item| DirEntry {
                name: item.name.clone(),
                file_type: item.file_type,
            })
            .collect())
    }

    fn read_link(&self, path: &NodePath) -> Result<Vec<u8>, FsError> {
        let (at, node) = self.lookup(path)?;
        if FileType::from_mode(node.mode) != FileType::Symlink {
            return Err(FsError::NotASymlink(path.to_string()));
        }
        if node.size > crate::limits::MAX_SYMLINK_TARGET {
            return Err(corrupt(format!(
                "symlink inode {} has length {}",
                at.ino, node.size
            )));
        }
        let tree = self.subvolume(at.tree)?;
        let map = extent::FileMap::load(&self.reader, &tree, at.ino, node.size)?;
        let mut out = vec![0u8; node.size as usize];
        map.read_at(&self.reader, 0, &mut out)?;
        Ok(out)
    }

    fn open(&self, path: &NodePath) -> Result<Box<dyn Read + '_>, FsError> {
        let (at, node) = self.lookup(path)?;
        let tree = self.subvolume(at.tree)?;
        let map = extent::FileMap::load(&self.reader, &tree, at.ino, node.size)?;
        Ok(Box::new(FileReader {
            fs: self,
            map,
            pos: 0,
            size: node.size,
        }))
    }
}

/// Sequential reader over one Btrfs file.
struct FileReader<'a> {
    fs: &'a Btrfs,
    map: extent::FileMap,
    pos: u64,
    size: u64,
}

impl Read for FileReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = (buf.len() as u64)
            .min(self.size.saturating_sub(self.pos))
            .min(1 << 20) as usize;
        if n == 0 {
            return Ok(0);
        }
        self.map
            .read_at(&self.fs.reader, self.pos, &mut buf[..n])
            .map_err(FsError::into_io)?;
        self.pos += n as u64;
        Ok(n)
    }
}
