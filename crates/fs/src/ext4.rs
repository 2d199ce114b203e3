//! ext2/3/4 through the `ext4-view` crate.

use crate::detect::FsKind;
use crate::error::FsError;
use crate::path::NodePath;
use crate::{DirEntry, FileSystem, FileType, Metadata};
use bootproof_image::ReadAt;
use ext4_view::{Ext4, Ext4Error, Ext4Read};
use std::io::{self, Read};
use std::sync::Arc;

/// Feeds ext4-view from a [`ReadAt`].
struct Reader(Arc<dyn ReadAt>);

impl Ext4Read for Reader {
    fn read(
        &mut self,
        start_byte: u64,
        dst: &mut [u8],
    ) -> Result<(), Box<dyn std::error::Error + Send + Sync + 'static>> {
        self.0
            .read_at(start_byte, dst)
            .map_err(|e| Box::new(e) as _)
    }
}

/// An opened ext2/3/4 filesystem.
pub(crate) struct Ext {
    fs: Ext4,
    kind: FsKind,
}

fn map_err(kind: FsKind, path: &NodePath, e: Ext4Error) -> FsError {
    match e {
        Ext4Error::NotFound => FsError::NotFound(path.to_string()),
        Ext4Error::NotADirectory => FsError::NotADirectory(path.to_string()),
        Ext4Error::IsADirectory => FsError::IsADirectory(path.to_string()),
        Ext4Error::NotASymlink => FsError::NotASymlink(path.to_string()),
        Ext4Error::IsASpecialFile => FsError::NotAFile(path.to_string()),
        Ext4Error::TooManySymlinks => FsError::SymlinkLoop(path.to_string()),
        Ext4Error::Io(e) => FsError::Io(io::Error::other(e.to_string())),
        Ext4Error::Incompatible(i) => FsError::unsupported(kind, i.to_string()),
        other => FsError::corrupt(kind, other.to_string()),
    }
}

fn file_type(t: ext4_view::FileType) -> FileType {
    use ext4_view::FileType as T;
    match t {
        T::Regular => FileType::File,
        T::Directory => FileType::Dir,
        T::Symlink => FileType::Symlink,
        T::CharacterDevice => FileType::CharDevice,
        T::BlockDevice => FileType::BlockDevice,
        T::Fifo => FileType::Fifo,
        T::Socket => FileType::Socket,
        #[allow(unreachable_patterns)]
        _ => FileType::Other,
    }
}

/// Checks the superblock's geometry against the device before ext4-view
/// sees it: ext4-view sizes its group-descriptor table from the claimed
/// block count, so a hostile count would allocate gigabytes (found by the
/// `fs_ext4` fuzz target). The kernel refuses such filesystems too
/// ("block count exceeds size of device").
fn check_geometry(dev: &dyn ReadAt, kind: FsKind) -> Result<(), FsError> {
    let mut sb = [0u8; 1024];
    dev.read_at(1024, &mut sb)?;
    let le32 = |at: usize| u32::from_le_bytes(sb[at..at + 4].try_into().expect("4 bytes"));
    let log = le32(24);
    if log > 6 {
        return Err(FsError::corrupt(
            kind,
            format!("block size 2^(10+{log}) is invalid"),
        ));
    }
    let block_size = 1024u64 << log;
    // ext4-view combines s_blocks_count_hi whatever the 64BIT feature says,
    // so the bound must use the same value it will.
    let blocks = u64::from(le32(4)) | u64::from(le32(0x150)) << 32;
    let per_group = u64::from(le32(32));
    if per_group == 0 || per_group > 8 * block_size {
        return Err(FsError::corrupt(
            kind,
            format!("{per_group} blocks per group is invalid"),
        ));
    }
    let bytes = blocks.saturating_mul(block_size);
    if bytes > dev.size() {
        return Err(FsError::corrupt(
            kind,
            format!(
                "superblock claims {blocks} blocks ({bytes} bytes) but the device holds {} bytes",
                dev.size()
            ),
        ));
    }
    Ok(())
}

fn ext4_path(path: &NodePath) -> Vec<u8> {
    path.to_bytes()
}

impl Ext {
    pub(crate) fn open(dev: Arc<dyn ReadAt>, kind: FsKind) -> Result<Ext, FsError> {
        check_geometry(&*dev, kind)?;
        let fs =
            Ext4::load(Box::new(Reader(dev))).map_err(|e| map_err(kind, &NodePath::root(), e))?;
        Ok(Ext { fs, kind })
    }

    fn p<'a>(&self, raw: &'a [u8], path: &NodePath) -> Result<ext4_view::Path<'a>, FsError> {
        ext4_view::Path::try_from(raw).map_err(|e| FsError::NotFound(format!("{path} ({e})")))
    }
}

impl FileSystem for Ext {
    fn kind(&self) -> FsKind {
        self.kind
    }

    fn label(&self) -> Option<String> {
        let l = self.fs.label().display().to_string();
        (!l.is_empty()).then_some(l)
    }

    fn uuid(&self) -> Option<String> {
        Some(self.fs.uuid().to_string())
    }

    fn lstat(&self, path: &NodePath) -> Result<Metadata, FsError> {
        let raw = ext4_path(path);
        let m = self
            .fs
            .symlink_metadata(self.p(&raw, path)?)
            .map_err(|e| map_err(self.kind, path, e))?;
        let mode = u32::from(m.mode());
        Ok(Metadata {
            file_type: file_type(m.file_type()),
            size: m.len(),
            mode: Some(mode),
            uid: Some(m.uid()),
            gid: Some(m.gid()),
            mtime: Some(m.modified().seconds()),
            inode: None,
        })
    }

    fn read_dir(&self, path: &NodePath) -> Result<Vec<DirEntry>, FsError> {
        let raw = ext4_path(path);
        let iter = self
            .fs
            .read_dir(self.p(&raw, path)?)
            .map_err(|e| map_err(self.kind, path, e))?;
        let mut out = Vec::new();
        for e in iter {
            let e = e.map_err(|e| map_err(self.kind, path, e))?;
            let name = e.file_name().as_ref().to_vec();
            if name == b"." || name == b".." {
                continue;
            }
            let ft = e.file_type().map_err(|e| map_err(self.kind, path, e))?;
            out.push(DirEntry {
                name,
                file_type: file_type(ft),
            });
        }
        Ok(out)
    }

    fn read_link(&self, path: &NodePath) -> Result<Vec<u8>, FsError> {
        // ext4-view reads a slow symlink's target into a buffer of the
        // inode's declared size: check it first (an `fs_ext4` fuzz finding,
        // a 4 GB allocation from a 42 KB image).
        let size = self.lstat(path)?.size;
        if size > crate::limits::MAX_SYMLINK_TARGET {
            return Err(FsError::corrupt(
                self.kind,
                format!("{path}: symlink target of {size} bytes declared"),
            ));
        }
        let raw = ext4_path(path);
        let t = self
            .fs
            .read_link(self.p(&raw, path)?)
            .map_err(|e| map_err(self.kind, path, e))?;
        Ok(t.as_ref().to_vec())
    }

    fn open(&self, path: &NodePath) -> Result<Box<dyn Read + '_>, FsError> {
        let raw = ext4_path(path);
        let f = self
            .fs
            .open(self.p(&raw, path)?)
            .map_err(|e| map_err(self.kind, path, e))?;
        Ok(Box::new(f))
    }
}
