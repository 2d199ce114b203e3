//! The chunk map: Btrfs logical addresses to device offsets.

use super::corrupt;
use super::superblock::{le16, le64, Superblock};
use super::tree::{Key, Reader, Tree};
use crate::error::FsError;
use crate::FsKind;

const FIRST_CHUNK_TREE_OBJECTID: u64 = 256;
const CHUNK_ITEM: u8 = 228;
/// `struct btrfs_chunk` without its stripes.
const CHUNK_LEN: usize = 48;
const STRIPE_LEN: usize = 32;
/// Block-group profiles that spread one copy over several devices.
const STRIPED: u64 = (1 << 3) | (1 << 6) | (1 << 7) | (1 << 8); // RAID0, RAID10, RAID5, RAID6
/// Most chunks accepted (bounds memory on hostile input).
const MAX_CHUNKS: usize = 1 << 20;

/// One chunk: `length` logical bytes at `logical` map to `physical`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Chunk {
    pub logical: u64,
    pub length: u64,
    pub physical: u64,
}

/// All chunks, sorted by logical address.
#[derive(Debug, Clone, Default)]
pub(crate) struct ChunkMap {
    chunks: Vec<Chunk>,
}

/// Parses a `btrfs_chunk` (with stripes) at the start of `b`; returns the
/// chunk and its byte length.
fn parse_chunk(logical: u64, b: &[u8]) -> Result<(Chunk, usize), FsError> {
    if b.len() < CHUNK_LEN {
        return Err(corrupt("chunk item truncated"));
    }
    let length = le64(b, 0);
    let kind = le64(b, 24);
    let num_stripes = usize::from(le16(b, 44));
    let total = CHUNK_LEN + num_stripes * STRIPE_LEN;
    if num_stripes == 0 || b.len() < total {
        return Err(corrupt(format!(
            "chunk at {logical:#x} has {num_stripes} stripes in {} bytes",
            b.len()
        )));
    }
    if kind & STRIPED != 0 && num_stripes > 1 {
        return Err(FsError::unsupported(
            FsKind::Btrfs,
            format!("striped chunk profile {kind:#x} (multi-device)"),
        ));
    }
    // SINGLE, DUP and RAID1*: every stripe holds a full copy; take the first.
    let physical = le64(b, CHUNK_LEN + 8);
    if length == 0 || logical.checked_add(length).is_none() {
        return Err(corrupt(format!(
            "chunk at {logical:#x} has length {length}"
        )));
    }
    Ok((
        Chunk {
            logical,
            length,
            physical,
        },
        total,
    ))
}

impl ChunkMap {
    fn insert(&mut self, c: Chunk) -> Result<(), FsError> {
        if self.chunks.len() >= MAX_CHUNKS {
            return Err(corrupt("too many chunks"));
        }
        if !self.chunks.iter().any(|x| x.logical == c.logical) {
            self.chunks.push(c);
            self.chunks.sort_by_key(|c| c.logical);
        }
        Ok(())
    }

    /// The bootstrap map from the superblock's embedded system chunks.
    pub(crate) fn from_sys_array(sb: &Superblock) -> Result<ChunkMap, FsError> {
        let a = &sb.sys_chunk_array;
        let mut map = ChunkMap::default();
        let mut pos = 0;
        while pos < a.len() {
            if pos + 17 > a.len() {
                return Err(corrupt("sys_chunk_array key truncated"));
            }
            let key = Key::parse(&a[pos..]);
            pos += 17;
            if key.kind != CHUNK_ITEM {
                return Err(corrupt(format!(
                    "sys_chunk_array holds item type {}",
                    key.kind
                )));
            }
            let (chunk, len) = parse_chunk(key.offset, &a[pos..])?;
            map.insert(chunk)?;
            pos += len;
        }
        if map.chunks.is_empty() {
            return Err(corrupt("sys_chunk_array is empty"));
        }
        Ok(map)
    }

    /// Adds every chunk from the chunk tree.
    pub(crate) fn load_chunk_tree(&mut self, reader: &Reader, tree: &Tree) -> Result<(), FsError> {
        let mut found = Vec::new();
        reader.search(
            tree,
            Key::new(FIRST_CHUNK_TREE_OBJECTID, CHUNK_ITEM, 0),
            Key::new(FIRST_CHUNK_TREE_OBJECTID, CHUNK_ITEM, u64::MAX),
            &mut |key, data| {
                found.push(parse_chunk(key.offset, data)?.0);
                Ok(true)
            },
        )?;
        for c in found {
            self.insert(c)?;
        }
        Ok(())
    }

    /// The device offset of `logical`, and how many bytes stay in its chunk.
    pub(crate) fn map(&self, logical: u64) -> Result<(u64, u64), FsError> {
        let i = self.chunks.partition_point(|c| c.logical <= logical);
        let c = i
            .checked_sub(1)
            .map(|i| self.chunks[i])
            .filter(|c| logical - c.logical < c.length)
            .ok_or_else(|| corrupt(format!("logical address {logical:#x} is in no chunk")))?;
        let delta = logical - c.logical;
        let physical = c
            .physical
            .checked_add(delta)
            .ok_or_else(|| corrupt(format!("chunk at {:#x} maps past 2^64", c.logical)))?;
        Ok((physical, c.length - delta))
    }
}
