//! Item payloads: inode items, directory items, root items.

use super::corrupt;
use super::superblock::{le16, le32, le64};
use super::tree::{Key, Tree};
use crate::error::FsError;
use crate::limits::DirBudget;
use crate::FileType;

/// `struct btrfs_inode_item` fields the reader uses.
#[derive(Debug, Clone)]
pub(crate) struct InodeItem {
    pub size: u64,
    pub uid: u32,
    pub gid: u32,
    pub mode: u32,
    pub mtime: i64,
}

pub(crate) fn inode_item(b: &[u8]) -> Result<InodeItem, FsError> {
    if b.len() < 160 {
        return Err(corrupt(format!("inode item of {} bytes", b.len())));
    }
    Ok(InodeItem {
        size: le64(b, 16),
        uid: le32(b, 44),
        gid: le32(b, 48),
        mode: le32(b, 52),
        mtime: le64(b, 136) as i64,
    })
}

/// One `struct btrfs_dir_item` (a DIR_ITEM may pack several).
#[derive(Debug, Clone)]
pub(crate) struct DirItem {
    pub location: Key,
    pub name: Vec<u8>,
    pub file_type: FileType,
}

/// Appends the directory items packed in `b` to `out`, charging each.
pub(crate) fn dir_items(
    b: &[u8],
    budget: &mut DirBudget,
    out: &mut Vec<DirItem>,
) -> Result<(), FsError> {
    let mut pos = 0;
    while pos < b.len() {
        if pos + 30 > b.len() {
            return Err(corrupt("directory item truncated"));
        }
        let location = Key::parse(&b[pos..]);
        let data_len = usize::from(le16(b, pos + 25));
        let name_len = usize::from(le16(b, pos + 27));
        let kind = b[pos + 29];
        let name_at = pos + 30;
        let end = name_at + name_len + data_len;
        if name_len == 0 || end > b.len() {
            return Err(corrupt("directory item name overruns its item"));
        }
        budget.charge(name_len)?;
        out.push(DirItem {
            location,
            name: b[name_at..name_at + name_len].to_vec(),
            file_type: FileType::from_dirent_code(kind).unwrap_or(FileType::Other),
        });
        pos = end;
    }
    Ok(())
}

/// The tree a `struct btrfs_root_item` points to.
pub(crate) fn root_item(b: &[u8]) -> Result<Tree, FsError> {
    if b.len() < 239 {
        return Err(corrupt(format!("root item of {} bytes", b.len())));
    }
    Ok(Tree {
        bytenr: le64(b, 176),
        level: b[238],
    })
}
