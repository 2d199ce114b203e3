//! Writing a boot entry's kernel, initrd and command line for direct
//! kernel boot, atomically, with a manifest; cached by content.

use crate::chain::{Arch, BootChain, BootEntry, FileRef};
use crate::kernel;
use crate::pe::PeInfo;
use bootproof_inspect::OpenedImage;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::fs::{self, File};
use std::io::Read;
use std::path::{Path, PathBuf};

mod write;
use write::{persist, stage_initrd, stage_kernel, write_atomic};

/// Schema of `manifest.json`.
pub const EXTRACT_SCHEMA: &str = "bootproof.extract/v1";
/// Most initrd bytes one entry may list, all files together (they are
/// streamed to disk, never held; real ones total a few hundred MiB).
const MAX_INITRD_TOTAL: u64 = crate::initrd::MAX_INITRD;
/// Largest kernel or UKI file read (the biggest distro UKIs, generic
/// initrd included, are around 100 MiB).
pub const MAX_KERNEL_FILE: u64 = 192 << 20;

/// One output file.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, schemars::JsonSchema)]
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
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Manifest {
    /// The document's schema id, [`EXTRACT_SCHEMA`].
    #[schemars(extend("const" = EXTRACT_SCHEMA))]
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

/// Schema of `extract --json`.
pub const EXTRACT_RUN_SCHEMA: &str = "bootproof.extract-run/v1";

/// What `bootproof extract --json` prints (`bootproof.extract-run/v1`): the
/// chain followed to the entry and what was written for it.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct ExtractReport {
    /// The document's schema id, [`EXTRACT_RUN_SCHEMA`].
    #[schemars(extend("const" = EXTRACT_RUN_SCHEMA))]
    pub schema: &'static str,
    /// The directory written.
    pub output_dir: PathBuf,
    /// No boot chain was found: the newest kernel in `/boot` was used.
    pub fallback_to_boot_dir: bool,
    /// The boot chain followed.
    pub chain: BootChain,
    /// What was written (also `manifest.json`).
    pub manifest: Manifest,
    /// Bytes read from host files.
    pub bytes_read: u64,
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

/// The entry's kernel, staged in `dir` in loadable form: streamed from a
/// plain kernel file, or from a UKI's `.linux` section (whose `.initrd`
/// and `.cmdline` come with it).
struct EntryKernel {
    staged: write::Staged,
    info: kernel::KernelInfo,
    /// Where it came from, for the manifest.
    source: String,
    /// A UKI's `.initrd` (empty otherwise).
    embedded_initrd: Vec<u8>,
    /// Its initrd sources so far (the UKI's `.initrd`).
    initrd_sources: Vec<String>,
    /// The command line as configured.
    cmdline: String,
}

fn stage_entry_kernel(
    img: &OpenedImage,
    entry: &BootEntry,
    dir: &Path,
) -> Result<EntryKernel, ExtractError> {
    let kernel_error = |source| ExtractError::Kernel {
        file: entry.kernel.to_string(),
        source,
    };
    Ok(if entry.uki {
        let raw = read(img, &entry.kernel, MAX_KERNEL_FILE)?;
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
        let (staged, info) = stage_kernel(dir, |out| kernel::load_stream(&linux[..], out))
            .map_err(|e| e.or_kernel(kernel_error))?;
        EntryKernel {
            staged,
            info,
            source: format!("{} (.linux)", entry.kernel),
            embedded_initrd: initrd,
            initrd_sources: srcs,
            cmdline,
        }
    } else {
        let (r, size) = img
            .open_file(&entry.kernel)
            .map_err(|e| ExtractError::Source {
                file: entry.kernel.to_string(),
                detail: e.to_string(),
            })?;
        if size > MAX_KERNEL_FILE {
            return Err(ExtractError::Source {
                file: entry.kernel.to_string(),
                detail: format!(
                    "{size} bytes is larger than any kernel ({MAX_KERNEL_FILE} at most)"
                ),
            });
        }
        let (staged, info) = stage_kernel(dir, |out| kernel::load_stream(r.take(size), out))
            .map_err(|e| e.or_kernel(kernel_error))?;
        EntryKernel {
            staged,
            info,
            source: entry.kernel.to_string(),
            embedded_initrd: Vec::new(),
            initrd_sources: Vec::new(),
            cmdline: entry.cmdline.clone(),
        }
    })
}

/// Extracts `entry` into `dir`.
pub fn extract(
    img: &OpenedImage,
    chain: &BootChain,
    entry: &BootEntry,
    dir: &Path,
) -> Result<Manifest, ExtractError> {
    let arch = chain.arch;
    fs::create_dir_all(dir).map_err(|source| ExtractError::Write {
        path: dir.to_path_buf(),
        source,
    })?;
    let EntryKernel {
        staged: staged_kernel,
        info,
        source: kernel_src_desc,
        embedded_initrd: initrd_bytes,
        mut initrd_sources,
        cmdline: mut configured,
    } = stage_entry_kernel(img, entry, dir)?;
    let transform = match (info.format, info.compression) {
        (_, Some(c)) => format!("decompressed {} ({:?})", c.name(), info.format),
        _ if entry.uki => "UKI .linux section".to_string(),
        _ => "copied".to_string(),
    };
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

    let kernel_out = Output {
        file: "kernel".into(),
        size: staged_kernel.size,
        sha256: staged_kernel.sha256.clone(),
        sources: vec![kernel_src_desc],
        transform,
    };
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
                bootproof_image::digest::sha256_file(&dir.join(&o.file), None)
                    .is_ok_and(|d| d == o.sha256)
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
    persist(staged_kernel.file, &dir.join("kernel"))?;
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
