//! B-tree nodes (`btrfs_header`, `btrfs_key_ptr`, `btrfs_item`) and search.

use super::chunk::ChunkMap;
use super::corrupt;
use super::superblock::{le32, le64, Superblock};
use crate::checksum::BtrfsCsum;
use crate::error::FsError;
use bootproof_image::ReadAt;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

const HEADER_LEN: usize = 101;
const KEY_PTR_LEN: usize = 33;
const ITEM_LEN: usize = 25;
/// BTRFS_MAX_LEVEL.
const MAX_LEVEL: u8 = 8;
/// Nodes one search may visit before the tree is declared hostile: 1 GiB
/// of 16 KiB metadata, far above what one directory or file's extents use,
/// and low enough that a tree whose pointers revisit nodes ends in seconds.
const MAX_VISITS: usize = 1 << 16;
/// Nodes kept in memory.
const NODE_CACHE: usize = 512;

/// A B-tree key, ordered by (objectid, type, offset).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Key {
    pub objectid: u64,
    pub kind: u8,
    pub offset: u64,
}

impl Key {
    pub(crate) fn new(objectid: u64, kind: u8, offset: u64) -> Key {
        Key {
            objectid,
            kind,
            offset,
        }
    }
    /// Decodes a 17-byte `btrfs_disk_key`.
    pub(crate) fn parse(b: &[u8]) -> Key {
        Key {
            objectid: le64(b, 0),
            kind: b[8],
            offset: le64(b, 9),
        }
    }
}

/// Called for each leaf item a search finds; returns whether to go on.
pub(crate) type Visitor<'a> = dyn FnMut(Key, &[u8]) -> Result<bool, FsError> + 'a;

/// A tree root: the node address and its level.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Tree {
    pub bytenr: u64,
    pub level: u8,
}

/// Reads nodes through the chunk map, validating each header.
pub(crate) struct Reader {
    dev: Arc<dyn ReadAt>,
    chunks: ChunkMap,
    pub node_size: u32,
    pub sector_size: u32,
    fsid: [u8; 16],
    csum: BtrfsCsum,
    cache: Mutex<HashMap<u64, Arc<Vec<u8>>>>,
}

impl Reader {
    pub(crate) fn new(dev: Arc<dyn ReadAt>, chunks: ChunkMap, sb: &Superblock) -> Reader {
        Reader {
            dev,
            chunks,
            node_size: sb.node_size,
            sector_size: sb.sector_size,
            fsid: sb.tree_fsid,
            csum: sb.csum,
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// Reads `buf.len()` bytes at a logical address.
    pub(crate) fn read_logical(&self, mut logical: u64, buf: &mut [u8]) -> Result<(), FsError> {
        let mut done = 0;
        while done < buf.len() {
            let (physical, left) = self.chunks.map(logical)?;
            let n = (left.min((buf.len() - done) as u64)) as usize;
            self.dev.read_at(physical, &mut buf[done..done + n]).map_err(|e| {
                if e.kind() == std::io::ErrorKind::UnexpectedEof {
                    corrupt(format!("logical {logical:#x} maps to {physical:#x}, past the end of the device"))
                } else {
                    FsError::Io(e)
                }
            })?;
            done += n;
            logical += n as u64;
        }
        Ok(())
    }

    fn node(&self, bytenr: u64, level: u8) -> Result<Arc<Vec<u8>>, FsError> {
        if let Some(n) = self.cache.lock().expect("node cache").get(&bytenr) {
            if n[0x64] == level {
                return Ok(Arc::clone(n));
            }
        }
        let mut b = vec![0u8; self.node_size as usize];
        self.read_logical(bytenr, &mut b)?;
        self.csum.verify(&b, || format!("tree block {bytenr:#x}"))?;
        if b[0x20..0x30] != self.fsid {
            return Err(corrupt(format!(
                "tree block {bytenr:#x} belongs to another filesystem"
            )));
        }
        if le64(&b, 0x30) != bytenr {
            return Err(corrupt(format!(
                "tree block {bytenr:#x} records address {:#x}",
                le64(&b, 0x30)
            )));
        }
        if b[0x64] != level {
            return Err(corrupt(format!(
                "tree block {bytenr:#x} is level {}, expected {level}",
                b[0x64]
            )));
        }
        let n = Arc::new(b);
        let mut cache = self.cache.lock().expect("node cache");
        if cache.len() >= NODE_CACHE {
            cache.clear();
        }
        cache.insert(bytenr, Arc::clone(&n));
        Ok(n)
    }

    /// Calls `f(key, item_data)` for every leaf item with `lo <= key <= hi`,
    /// in key order, until `f` returns `false`.
    pub(crate) fn search(
        &self,
        tree: &Tree,
        lo: Key,
        hi: Key,
        f: &mut Visitor<'_>,
    ) -> Result<(), FsError> {
        if tree.level >= MAX_LEVEL {
            return Err(corrupt(format!(
                "tree root at {:#x} has level {}",
                tree.bytenr, tree.level
            )));
        }
        let mut visits = 0;
        self.visit(tree.bytenr, tree.level, lo, hi, f, &mut visits)
            .map(|_| ())
    }

    fn visit(
        &self,
        bytenr: u64,
        level: u8,
        lo: Key,
        hi: Key,
        f: &mut Visitor<'_>,
        visits: &mut usize,
    ) -> Result<bool, FsError> {
        *visits += 1;
        if *visits > MAX_VISITS {
            return Err(corrupt(
                "tree search visits too many nodes (cyclic or hostile tree)",
            ));
        }
        let node = self.node(bytenr, level)?;
        let b = &node[..];
        let nritems = le32(b, 0x60) as usize;
        let body = b.len() - HEADER_LEN;
        if level == 0 {
            if nritems * ITEM_LEN > body {
                return Err(corrupt(format!("leaf {bytenr:#x} claims {nritems} items")));
            }
            for i in 0..nritems {
                let at = HEADER_LEN + i * ITEM_LEN;
                let key = Key::parse(&b[at..]);
                if key < lo {
                    continue;
                }
                if key > hi {
                    return Ok(false);
                }
                let off = le32(b, at + 17) as usize;
                let size = le32(b, at + 21) as usize;
                let start = HEADER_LEN + off;
                if off.checked_add(size).is_none_or(|e| e > body) {
                    return Err(corrupt(format!(
                        "leaf {bytenr:#x} item {i} data lies outside the node"
                    )));
                }
                if !f(key, &b[start..start + size])? {
                    return Ok(false);
                }
            }
            return Ok(true);
        }
        if nritems * KEY_PTR_LEN > body {
            return Err(corrupt(format!(
                "node {bytenr:#x} claims {nritems} pointers"
            )));
        }
        for i in 0..nritems {
            let at = HEADER_LEN + i * KEY_PTR_LEN;
            let key = Key::parse(&b[at..]);
            if key > hi {
                return Ok(false);
            }
            if i + 1 < nritems {
                let next = Key::parse(&b[at + KEY_PTR_LEN..]);
                if next <= lo {
                    continue;
                }
            }
            let child = le64(b, at + 17);
            if !self.visit(child, level - 1, lo, hi, f, visits)? {
                return Ok(false);
            }
        }
        Ok(true)
    }
}
