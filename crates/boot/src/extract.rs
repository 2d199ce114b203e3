//! Writing a boot entry's kernel, initrd and command line for direct
//! kernel boot, atomically, with a manifest; cached by content.

use crate::chain::{Arch, BootChain, BootEntry, FileRef};
use crate::kernel::{self, KernelInfo};
use crate::pe::PeInfo;
use bootproof_inspect::OpenedImage;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::fs::{self, File};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

/// Schema of `manifest.json`.
pub const EXTRACT_SCHEMA: &str = "bootproof.extract/v1";
/// Most initrd bytes one entry may list, all files together (they are
/// streamed to disk, never held; real ones total a few hundred MiB).
const MAX_INITRD_TOTAL: u64 = crate::initrd::MAX_INITRD;
/// Largest kernel or UKI file read (the biggest distro UKIs, generic
/// initrd included, are around 100 MiB).
pub const MAX_KERNEL_FILE: u64 = 192 << 20;

/// One output file.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Output {
    /// File name inside the output directory.
    pub file: String,
    /// Its size.
    pub size: u64,
    /// Its sha256.
    pub sha256: String,
    /// Where it came from inside the image.
    pub sources: Vec<String>,
    /// What was done to it (`copied`, `decompressed gzip`, `UKI .linux section` …).
    pub transform: String,
}

/// What `extract` wrote (also `manifest.json`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Manifest {
    /// Always [`EXTRACT_SCHEMA`].
    pub schema: String,
    /// Content key: sha256 over the source bytes, command line and arch.
    pub key: String,
    /// The entry's title and where it is defined.
    pub entry_title: String,
    /// Where the entry is defined.
    pub entry_source: String,
    /// Architecture (`aarch64`, `x86_64`).
    pub arch: Arch,
    /// Kernel release.
    pub kernel_version: Option<String>,
    /// Kernel facts.
    pub kernel_format: String,
    /// The kernel output.
    pub kernel: Output,
    /// The initrd output (absent when the entry has none).
    pub initrd: Option<Output>,
    /// The command line as configured.
    pub cmdline_configured: String,
    /// The command line written (with `added`).
    pub cmdline: String,
    /// Tokens bootproof added (`root=…`, `console=…`).
    pub cmdline_added: Vec<String>,
    /// Whether this run reused identical outputs already present.
    #[serde(skip_deserializing)]
    pub cache_hit: bool,
}

/// Why extraction failed.
#[derive(Debug, thiserror::Error)]
pub enum ExtractError {
    /// No entry to extract.
    #[error("no boot entry to extract: {0}")]
    NoEntry(String),
    /// A file the entry names cannot be read.
    #[error("{file}: {detail}")]
    Source {
        /// The file inside the image.
        file: String,
        /// Why.
        detail: String,
    },
    /// The kernel is not usable.
    #[error("{file}: {source}")]
    Kernel {
        /// The file inside the image.
        file: String,
        /// Why.
        source: kernel::KernelError,
    },
    /// Writing the outputs failed.
    #[error("writing {}: {source}", path.display())]
    Write {
        /// The output.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
}

fn read(img: &OpenedImage, f: &FileRef, limit: u64) -> Result<Vec<u8>, ExtractError> {
    img.read(f, limit).map_err(|e| ExtractError::Source {
        file: f.to_string(),
        detail: e.to_string(),
    })
}

pub use bootproof_image::digest::hex;

/// The partition holding the OS root, as `root=` would name it.
fn derived_root(img: &OpenedImage) -> Option<String> {
    let slot = img
        .slots
        .iter()
        .find(|s| s.is_root && s.partition.is_some())?;
    let p = slot.partition.as_ref()?;
    p.partuuid
        .as_ref()
        .map(|u| format!("root=PARTUUID={u}"))
        .or_else(|| slot.uuid.as_ref().map(|u| format!("root=UUID={u}")))
}

/// The entry to use when the image has no boot chain to follow: the newest
/// kernel under an OS root's `/boot`, paired with the initrd of the same
/// version (never by mtime).
pub fn entry_from_boot_dir(img: &OpenedImage) -> Option<BootEntry> {
    for (slot, v) in img.volumes_root_first() {
        let names: Vec<String> = v
            .read_dir(b"/boot")
            .ok()?
            .into_iter()
            .map(|e| String::from_utf8_lossy(&e.name).into_owned())
            .collect();
        let mut versions: Vec<(String, String)> = names
            .iter()
            .filter_map(|n| {
                let ver = n
                    .strip_prefix("vmlinuz-")
                    .or_else(|| n.strip_prefix("vmlinux-"))
                    .or_else(|| n.strip_prefix("Image-"))?;
                Some((ver.to_string(), n.clone()))
            })
            .collect();
        versions.sort_by(|a, b| crate::chain::version_cmp(&b.0, &a.0));
        let Some((ver, kname)) = versions.into_iter().next() else {
            continue;
        };
        let initrd = [
            format!("initrd.img-{ver}"),
            format!("initramfs-{ver}.img"),
            format!("initrd-{ver}"),
            format!("initrd-{ver}.img"),
        ]
        .into_iter()
        .find(|c| names.contains(c));
        return Some(BootEntry {
            title: format!("kernel {ver} from /boot"),
            source: format!("{}:/boot", slot.number),
            kernel: FileRef {
                slot: slot.number,
                path: format!("/boot/{kname}"),
            },
            initrds: initrd
                .into_iter()
                .map(|i| FileRef {
                    slot: slot.number,
                    path: format!("/boot/{i}"),
                })
                .collect(),
            cmdline: String::new(),
            default: true,
            uki: false,
            version: Some(ver),
        });
    }
    None
}

/// Writes `data` to `dir/name` atomically: a temp file created with a
/// random name and `O_EXCL` in `dir` (a file or symlink planted there
/// cannot receive the data), fsync, then rename over `name` (which
/// replaces a symlink there instead of writing through it).
fn write_atomic(dir: &Path, name: &str, data: &[u8]) -> Result<(), ExtractError> {
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
fn temp_in(dir: &Path, name: &str) -> Result<tempfile::NamedTempFile, ExtractError> {
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
fn persist(f: tempfile::NamedTempFile, path: &Path) -> Result<(), ExtractError> {
    let err = |source| ExtractError::Write {
        path: path.to_path_buf(),
        source,
    };
    f.as_file().sync_all().map_err(err)?;
    f.persist(path).map_err(|e| err(e.error))?;
    Ok(())
}

/// The entry's initrd, written to a temp file as it streams.
struct StagedInitrd {
    file: tempfile::NamedTempFile,
    size: u64,
    sha256: String,
}

/// Concatenates `embedded` (a UKI's `.initrd`) and `files` into a temp
/// file in `dir`, hashing on the way: memory stays at one buffer however
/// large or repeated the files are; their declared total is checked
/// against [`MAX_INITRD_TOTAL`] before a byte is copied.
fn stage_initrd(
    img: &OpenedImage,
    dir: &Path,
    embedded: &[u8],
    files: &[FileRef],
) -> Result<Option<StagedInitrd>, ExtractError> {
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
    Ok(Some(StagedInitrd {
        file,
        size: total,
        sha256,
    }))
}

enum CopyError {
    Write(std::io::Error),
    Source(ExtractError),
}

/// Writes `embedded` and then each opened file to `file`; returns the
/// sha256 of everything written.
fn copy_hashed(
    file: &tempfile::NamedTempFile,
    embedded: &[u8],
    opened: Vec<(&FileRef, Box<dyn Read + '_>, u64)>,
) -> Result<String, CopyError> {
    let mut out = HashingWriter {
        inner: std::io::BufWriter::new(file.as_file()),
        hash: Sha256::new(),
    };
    out.write_all(embedded).map_err(CopyError::Write)?;
    for (f, r, size) in opened {
        let source = |detail: String| {
            CopyError::Source(ExtractError::Source {
                file: f.to_string(),
                detail,
            })
        };
        let copied =
            std::io::copy(&mut r.take(size), &mut out).map_err(|e| source(e.to_string()))?;
        if copied != size {
            return Err(source(format!(
                "file data ends after {copied} of {size} bytes"
            )));
        }
    }
    out.inner.flush().map_err(CopyError::Write)?;
    Ok(hex(out.hash.finalize()))
}

/// Hashes what passes through to the file.
struct HashingWriter<W> {
    inner: W,
    hash: Sha256,
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hash.update(&buf[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

fn output(file: &str, data: &[u8], sources: Vec<String>, transform: String) -> Output {
    Output {
        file: file.into(),
        size: data.len() as u64,
        sha256: hex(Sha256::digest(data)),
        sources,
        transform,
    }
}

/// Extracts `entry` into `dir`.
pub fn extract(
    img: &OpenedImage,
    chain: &BootChain,
    entry: &BootEntry,
    dir: &Path,
) -> Result<Manifest, ExtractError> {
    let arch = chain.arch;
    let raw = read(img, &entry.kernel, MAX_KERNEL_FILE)?;
    let (kernel_bytes, kernel_src_desc, initrd_bytes, mut initrd_sources, mut configured) =
        if entry.uki {
            let section = |s: &str| PeInfo::section_data(&raw, s).map(<[u8]>::to_vec);
            let linux = section(".linux").ok_or_else(|| ExtractError::Source {
                file: entry.kernel.to_string(),
                detail: "UKI has no .linux section".into(),
            })?;
            let initrd = section(".initrd").unwrap_or_default();
            let cmdline = section(".cmdline")
                .map(|c| {
                    String::from_utf8_lossy(&c)
                        .trim_end_matches('\0')
                        .trim()
                        .to_string()
                })
                .unwrap_or_default();
            let srcs = if initrd.is_empty() {
                vec![]
            } else {
                vec![format!("{} (.initrd)", entry.kernel)]
            };
            (
                linux,
                format!("{} (.linux)", entry.kernel),
                initrd,
                srcs,
                cmdline,
            )
        } else {
            (
                raw,
                entry.kernel.to_string(),
                Vec::new(),
                Vec::new(),
                entry.cmdline.clone(),
            )
        };
    let (info, loadable): (KernelInfo, _) =
        kernel::load(&kernel_bytes).map_err(|source| ExtractError::Kernel {
            file: entry.kernel.to_string(),
            source,
        })?;
    let transform = match (info.format, info.compression) {
        (_, Some(c)) => format!("decompressed {} ({:?})", c.name(), info.format),
        _ if entry.uki => "UKI .linux section".to_string(),
        _ => "copied".to_string(),
    };
    fs::create_dir_all(dir).map_err(|source| ExtractError::Write {
        path: dir.to_path_buf(),
        source,
    })?;
    initrd_sources.extend(entry.initrds.iter().map(|f| f.to_string()));
    let staged = stage_initrd(img, dir, &initrd_bytes, &entry.initrds)?;
    drop(initrd_bytes);
    configured = configured.trim().to_string();
    let mut added = Vec::new();
    let has = |k: &str| configured.split_whitespace().any(|w| w.starts_with(k));
    if !has("root=") && !entry.uki {
        if let Some(r) = derived_root(img) {
            added.push(r);
        }
    }
    if !has("console=") {
        added.push(format!("console={}", arch.console()));
    }
    let cmdline = std::iter::once(configured.as_str())
        .chain(added.iter().map(String::as_str))
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join(" ");

    let kernel_out = output("kernel", &loadable, vec![kernel_src_desc], transform);
    let initrd_out = staged.as_ref().map(|s| Output {
        file: "initrd".into(),
        size: s.size,
        sha256: s.sha256.clone(),
        transform: if initrd_sources.len() > 1 {
            format!("concatenated {} files", initrd_sources.len())
        } else {
            "copied".to_string()
        },
        sources: initrd_sources.clone(),
    });
    // The cache key covers every output's content: the digests already
    // computed, the command line and the arch (no second pass over the bytes).
    let mut h = Sha256::new();
    for part in [
        kernel_out.sha256.as_bytes(),
        initrd_out
            .as_ref()
            .map_or(&b""[..], |o| o.sha256.as_bytes()),
        cmdline.as_bytes(),
        arch.name().as_bytes(),
    ] {
        h.update((part.len() as u64).to_le_bytes());
        h.update(part);
    }
    let key = hex(h.finalize());
    let mut manifest = Manifest {
        schema: EXTRACT_SCHEMA.into(),
        key,
        entry_title: entry.title.clone(),
        entry_source: entry.source.clone(),
        arch,
        kernel_version: info.version.clone(),
        kernel_format: format!("{:?}", info.format),
        kernel: kernel_out,
        initrd: initrd_out,
        cmdline_configured: configured,
        cmdline: cmdline.clone(),
        cmdline_added: added,
        cache_hit: false,
    };
    // Cache: the same content already extracted here (checked by hash, not mtime).
    if let Ok(old) = fs::read(dir.join("manifest.json")) {
        if let Ok(old) = serde_json::from_slice::<Manifest>(&old) {
            let intact = |o: &Output| {
                fs::read(dir.join(&o.file)).is_ok_and(|d| hex(Sha256::digest(&d)) == o.sha256)
            };
            if old.key == manifest.key
                && intact(&old.kernel)
                && old.initrd.as_ref().is_none_or(intact)
                && fs::read_to_string(dir.join("cmdline")).is_ok_and(|c| c.trim_end() == cmdline)
            {
                manifest.cache_hit = true;
                return Ok(manifest);
            }
        }
    }
    write_atomic(dir, "kernel", &loadable)?;
    match staged {
        None => {
            let _ = fs::remove_file(dir.join("initrd"));
        }
        Some(s) => persist(s.file, &dir.join("initrd"))?,
    }
    write_atomic(dir, "cmdline", format!("{cmdline}\n").as_bytes())?;
    let json = serde_json::to_vec_pretty(&manifest).expect("manifest serializes");
    write_atomic(dir, "manifest.json", &json)?;
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(manifest)
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
