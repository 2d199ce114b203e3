//! Host files opened read-only, read with `pread`.

use crate::error::ImageError;
use crate::read_at::{check_bounds, IoStats, ReadAt};
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;

/// A host file opened read-only. Also the reader of a raw image.
pub(crate) struct HostFile {
    file: File,
    size: u64,
    stats: IoStats,
}

impl HostFile {
    /// Opens `path` for reading only; the input image is never writable
    /// through bootproof.
    pub(crate) fn open(path: &Path, stats: IoStats) -> Result<HostFile, ImageError> {
        let file = File::open(path).map_err(|e| ImageError::io(path, e))?;
        let meta = file.metadata().map_err(|e| ImageError::io(path, e))?;
        if meta.is_dir() {
            return Err(ImageError::io(
                path,
                io::Error::new(io::ErrorKind::InvalidInput, "is a directory, not an image"),
            ));
        }
        // Block devices report size 0 in metadata; seek to the end instead.
        let size = if meta.is_file() {
            meta.len()
        } else {
            use std::io::Seek;
            (&file)
                .seek(io::SeekFrom::End(0))
                .map_err(|e| ImageError::io(path, e))?
        };
        Ok(HostFile { file, size, stats })
    }
}

impl ReadAt for HostFile {
    fn size(&self) -> u64 {
        self.size
    }
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        check_bounds(offset, buf.len(), self.size)?;
        self.stats.record(buf.len());
        self.file.read_exact_at(buf, offset)
    }
}
