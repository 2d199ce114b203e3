//! How `extract` writes: every output streams into a temp file created
//! with `O_EXCL` in the output directory, hashed on the way, then synced
//! and renamed over its name, so memory stays at a buffer whatever the
//! kernel's or initrds' size and a planted symlink receives nothing.

use super::{ExtractError, MAX_INITRD_TOTAL};
use crate::chain::FileRef;
use crate::kernel::{self, KernelInfo};
use bootproof_image::digest::HashingWriter;
use bootproof_inspect::OpenedImage;
use std::io::{Read, Write};
use std::path::Path;

/// Writes `data` to `dir/name` atomically: a temp file created with a
/// random name and `O_EXCL` in `dir` (a file or symlink planted there
/// cannot receive the data), fsync, then rename over `name` (which
/// replaces a symlink there instead of writing through it).
pub(super) fn write_atomic(dir: &Path, name: &str, data: &[u8]) -> Result<(), ExtractError> {
    let path = dir.join(name);
    let mut f = temp_in(dir, name)?;
    f.write_all(data).map_err(|source| ExtractError::Write {
        path: path.clone(),
        source,
    })?;
    persist(f, &path)
}

/// Creates a temp file in `dir` for output `name`: random name, `O_EXCL`
/// (a file or symlink planted there cannot receive the data).
pub(super) fn temp_in(dir: &Path, name: &str) -> Result<tempfile::NamedTempFile, ExtractError> {
    tempfile::Builder::new()
        .prefix(&format!(".{name}."))
        .tempfile_in(dir)
        .map_err(|source| ExtractError::Write {
            path: dir.join(name),
            source,
        })
}

/// Syncs a finished temp file and renames it over `path` (replacing a
/// symlink there instead of writing through it).
pub(super) fn persist(f: tempfile::NamedTempFile, path: &Path) -> Result<(), ExtractError> {
    let err = |source| ExtractError::Write {
        path: path.to_path_buf(),
        source,
    };
    f.as_file().sync_all().map_err(err)?;
    f.persist(path).map_err(|e| err(e.error))?;
    Ok(())
}

/// An output written to a temp file in the output directory as it
/// streams, hashed on the way.
pub(super) struct Staged {
    pub(super) file: tempfile::NamedTempFile,
    pub(super) size: u64,
    pub(super) sha256: String,
}

/// Concatenates `embedded` (a UKI's `.initrd`) and `files` into a temp
/// file in `dir`, hashing on the way: memory stays at one buffer however
/// large or repeated the files are; their declared total is checked
/// against [`MAX_INITRD_TOTAL`] before a byte is copied.
pub(super) fn stage_initrd(
    img: &OpenedImage,
    dir: &Path,
    embedded: &[u8],
    files: &[FileRef],
) -> Result<Option<Staged>, ExtractError> {
    let mut opened = Vec::with_capacity(files.len());
    let mut total = embedded.len() as u64;
    for f in files {
        let (r, size) = img.open_file(f).map_err(|e| ExtractError::Source {
            file: f.to_string(),
            detail: e.to_string(),
        })?;
        total = total.saturating_add(size);
        if total > MAX_INITRD_TOTAL {
            return Err(ExtractError::Source {
                file: f.to_string(),
                detail: format!(
                    "the entry's initrds total over {MAX_INITRD_TOTAL} bytes (listed repeatedly, or not an initrd)"
                ),
            });
        }
        opened.push((f, r, size));
    }
    if total == 0 {
        return Ok(None);
    }
    let file = temp_in(dir, "initrd")?;
    let path = file.path().to_path_buf();
    let sha256 = copy_hashed(&file, embedded, opened).map_err(|e| match e {
        CopyError::Write(source) => ExtractError::Write {
            path: path.clone(),
            source,
        },
        CopyError::Source(e) => e,
    })?;
    Ok(Some(Staged {
        file,
        size: total,
        sha256,
    }))
}

pub(super) enum CopyError {
    Write(std::io::Error),
    Source(ExtractError),
}

/// Why a kernel could not be staged: writing, or the kernel itself.
pub(super) enum StageKernelError {
    Write(ExtractError),
    Kernel(kernel::KernelError),
}

impl StageKernelError {
    pub(super) fn or_kernel(
        self,
        f: impl FnOnce(kernel::KernelError) -> ExtractError,
    ) -> ExtractError {
        match self {
            StageKernelError::Write(e) => e,
            StageKernelError::Kernel(e) => f(e),
        }
    }
}

/// Writes the loadable kernel `load` produces to a temp file in `dir`,
/// hashing on the way: memory stays at a buffer whatever its size.
pub(super) fn stage_kernel(
    dir: &Path,
    load: impl FnOnce(&mut dyn Write) -> Result<KernelInfo, kernel::KernelError>,
) -> Result<(Staged, KernelInfo), StageKernelError> {
    let file = temp_in(dir, "kernel").map_err(StageKernelError::Write)?;
    let (info, sha256) = {
        let mut out = HashingWriter::new(file.as_file());
        let info = load(&mut out).map_err(StageKernelError::Kernel)?;
        let (_, sha256) = out.finish().map_err(|source| {
            StageKernelError::Write(ExtractError::Write {
                path: dir.join("kernel"),
                source,
            })
        })?;
        (info, sha256)
    };
    Ok((
        Staged {
            file,
            size: info.loadable_size,
            sha256,
        },
        info,
    ))
}

/// Writes `embedded` and then each opened file to `file`; returns the
/// sha256 of everything written.
pub(super) fn copy_hashed(
    file: &tempfile::NamedTempFile,
    embedded: &[u8],
    opened: Vec<(&FileRef, Box<dyn Read + '_>, u64)>,
) -> Result<String, CopyError> {
    let mut out = HashingWriter::new(file.as_file());
    out.write_all(embedded).map_err(CopyError::Write)?;
    for (f, r, size) in opened {
        let source = |detail: String| {
            CopyError::Source(ExtractError::Source {
                file: f.to_string(),
                detail,
            })
        };
        // Large reads: the filesystem readers pay per call.
        let mut r = std::io::BufReader::with_capacity(256 << 10, r.take(size));
        let copied = std::io::copy(&mut r, &mut out).map_err(|e| source(e.to_string()))?;
        if copied != size {
            return Err(source(format!(
                "file data ends after {copied} of {size} bytes"
            )));
        }
    }
    let (_, sha256) = out.finish().map_err(CopyError::Write)?;
    Ok(sha256)
}

#[cfg(test)]
mod write_tests {
    use super::write_atomic;

    /// Planted symlinks in the output directory, at the old predictable
    /// temp name and at the output's own name, send nothing outside it.
    #[test]
    fn planted_symlinks_are_not_followed() {
        let base = std::env::temp_dir().join(format!("bp-extract-links-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&base);
        let (out, victim) = (base.join("out"), base.join("victim"));
        std::fs::create_dir_all(&out).unwrap();
        std::fs::write(&victim, b"precious").unwrap();
        let old_tmp = out.join(format!(".kernel.tmp-{}", std::process::id()));
        std::os::unix::fs::symlink(&victim, &old_tmp).unwrap();
        std::os::unix::fs::symlink(&victim, out.join("kernel")).unwrap();
        write_atomic(&out, "kernel", b"new kernel").unwrap();
        assert_eq!(std::fs::read(&victim).unwrap(), b"precious");
        let meta = std::fs::symlink_metadata(out.join("kernel")).unwrap();
        assert!(
            meta.file_type().is_file(),
            "the link was replaced, not followed"
        );
        assert_eq!(std::fs::read(out.join("kernel")).unwrap(), b"new kernel");
        std::fs::remove_dir_all(&base).unwrap();
    }
}
