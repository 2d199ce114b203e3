//! Read-only random access to VM disk images.
//!
//! This crate owns the first stage of bootproof's pipeline: turning an image
//! *file* (raw, qcow2 with a backing chain, VHD, VHDX, or VMDK) into a flat, virtual
//! disk that later stages read with [`ReadAt`]. It never opens an input for
//! writing, never trusts a size or offset read from the file, and refuses
//! formats it cannot read yet by naming them.
//!
//! ```no_run
//! use bootproof_image::{Image, OpenOptions, ReadAt};
//! let image = Image::open("disk.qcow2", &OpenOptions::default())?;
//! let mut sector = [0u8; 512];
//! image.read_at(0, &mut sector)?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![forbid(unsafe_code)]

mod cache;
mod container;
mod detect;
pub mod digest;
mod error;
mod qcow2;
mod raw;
mod read_at;
mod tar;
mod unpack;
mod vhd;
mod vhdx;
mod vmdk;

pub use container::Container;
pub use detect::{probe_format, DetectedFormat};
pub use error::ImageError;
pub use read_at::{by_block, check_bounds, IoStats, MemImage, ReadAt, Slice, Span, Spans};
pub use unpack::{read_up_to, Compression, MAX_UNPACKED};

use serde::Serialize;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Longest backing chain followed before giving up (QEMU itself has no fixed
/// limit; real chains are a handful deep, and this bounds a hostile loop).
pub const MAX_CHAIN_DEPTH: usize = 16;

/// How to open an image.
#[derive(Debug, Clone, Default)]
pub struct OpenOptions {
    /// Follow qcow2 backing files. Off by default: a backing file name inside
    /// an untrusted image must not make bootproof open arbitrary host files
    /// without the user saying so.
    pub allow_backing: bool,
    /// Where compressed images (`.raw.xz`, `.tar.gz`, `.zst`) are unpacked,
    /// once per content; without it they are refused.
    pub unpack_dir: Option<PathBuf>,
}

/// One layer of an opened image: the file itself and, for qcow2, each
/// backing file below it.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct ChainLink {
    /// Host path of this layer.
    pub path: PathBuf,
    /// Format of this layer, as QEMU names it (`raw`, `qcow2`, `vpc`, `vhdx`,
    /// `vmdk`).
    pub format: String,
    /// Format version where the format has one (qcow2: 2 or 3).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<u32>,
    /// Size of the virtual disk this layer presents, in bytes.
    pub virtual_size: u64,
    /// Size of the host file, in bytes.
    pub file_size: u64,
    /// qcow2 cluster size (VMDK grain, VHDX block size) in bytes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cluster_size: Option<u64>,
    /// Compression used by compressed clusters (`deflate`, `zstd`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub compression: Option<String>,
    /// VHD and VHDX: `fixed` or `dynamic`; VMDK: its `createType`
    /// (`monolithicSparse`, `streamOptimized`, `monolithicFlat`, …).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subformat: Option<String>,
    /// The backing file name exactly as recorded in the image.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backing_file: Option<String>,
    /// What the disk was wrapped in (an OVA, a tar, a compression) and
    /// where its bytes are.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub container: Option<Container>,
    /// Non-fatal observations (dirty or corrupt bits, …).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

/// An opened, read-only disk image: the top layer first in [`Image::chain`].
pub struct Image {
    chain: Vec<ChainLink>,
    reader: Arc<dyn ReadAt>,
    stats: IoStats,
}

impl Image {
    /// Open `path` read-only, detecting its format from its content.
    pub fn open(path: impl AsRef<Path>, options: &OpenOptions) -> Result<Image, ImageError> {
        let stats = IoStats::default();
        let mut chain = Vec::new();
        let reader = open_layer(path.as_ref(), options, &stats, &mut chain, 0)?;
        Ok(Image {
            chain,
            reader,
            stats,
        })
    }

    /// Opens an image that is already a reader (in memory, or provided by an
    /// embedder). Backing files are never followed from here: there is no
    /// directory to resolve them against.
    pub fn from_reader(reader: Arc<dyn ReadAt>, name: &str) -> Result<Image, ImageError> {
        let mut chain = Vec::new();
        let reader = open_format(reader, Path::new(name), None, &mut chain, true)?;
        Ok(Image {
            chain,
            reader,
            stats: IoStats::default(),
        })
    }

    /// The layers of this image, top first.
    pub fn chain(&self) -> &[ChainLink] {
        &self.chain
    }

    /// Format of the top layer.
    pub fn format(&self) -> &str {
        &self.chain[0].format
    }

    /// Where QEMU reads this disk: the file (the archive holding it, or
    /// its unpacked copy, for a disk in a container) and, for an archive
    /// member, its byte range there.
    pub fn host_file(&self) -> (&Path, Option<(u64, u64)>) {
        let top = &self.chain[0];
        match &top.container {
            Some(c) => (&c.host, c.window),
            None => (&top.path, None),
        }
    }

    /// The virtual disk as a shareable reader.
    pub fn reader(&self) -> Arc<dyn ReadAt> {
        Arc::clone(&self.reader)
    }

    /// Bytes and read calls issued to host files so far (all layers).
    pub fn stats(&self) -> &IoStats {
        &self.stats
    }
}

impl ReadAt for Image {
    fn size(&self) -> u64 {
        self.reader.size()
    }
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> std::io::Result<()> {
        self.reader.read_at(offset, buf)
    }
}

/// How backing files are opened while following a chain from disk.
struct Follow<'a> {
    options: &'a OpenOptions,
    stats: &'a IoStats,
    depth: usize,
}

fn open_layer(
    path: &Path,
    options: &OpenOptions,
    stats: &IoStats,
    chain: &mut Vec<ChainLink>,
    depth: usize,
) -> Result<Arc<dyn ReadAt>, ImageError> {
    if depth >= MAX_CHAIN_DEPTH {
        return Err(ImageError::ChainTooDeep {
            path: path.to_path_buf(),
            limit: MAX_CHAIN_DEPTH,
        });
    }
    let file = raw::HostFile::open(path, stats.clone())?;
    let canonical = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    if chain
        .iter()
        .any(|l| std::fs::canonicalize(&l.path).ok().as_ref() == Some(&canonical))
    {
        return Err(ImageError::ChainLoop {
            path: path.to_path_buf(),
        });
    }
    let follow = Follow {
        options,
        stats,
        depth,
    };
    // Containers (archives, compression) only at the top, never as backing.
    open_format(Arc::new(file), path, Some(follow), chain, depth == 0)
}

/// Detects the format of `reader`, records its chain link, and returns the
/// virtual disk. Backing files are opened only through `follow` (and only
/// when its options allow); without it a backing file is refused.
fn open_format(
    reader: Arc<dyn ReadAt>,
    path: &Path,
    follow: Option<Follow<'_>>,
    chain: &mut Vec<ChainLink>,
    containers: bool,
) -> Result<Arc<dyn ReadAt>, ImageError> {
    let file_size = reader.size();
    let mut link = ChainLink {
        path: path.to_path_buf(),
        format: "raw".into(),
        version: None,
        virtual_size: file_size,
        file_size,
        cluster_size: None,
        compression: None,
        subformat: None,
        backing_file: None,
        container: None,
        warnings: Vec::new(),
    };
    match detect::probe_format(&*reader).map_err(|e| ImageError::io(path, e))? {
        DetectedFormat::Raw => {
            chain.push(link);
            Ok(reader)
        }
        DetectedFormat::Qcow2 => {
            let header = qcow2::Header::parse(&*reader, path)?;
            link.format = "qcow2".into();
            link.version = Some(header.version);
            link.virtual_size = header.size;
            link.cluster_size = Some(header.cluster_size());
            link.compression = Some(header.compression.name().into());
            link.backing_file = header.backing_file.clone();
            link.warnings = header.warnings.clone();
            chain.push(link);
            let backing = match (&header.backing_file, follow) {
                (None, _) => None,
                (Some(name), Some(f)) if f.options.allow_backing => {
                    let backing_path = resolve_backing(path, name);
                    if let Some(fmt) = &header.backing_format {
                        if fmt != "raw" && fmt != "qcow2" {
                            return Err(ImageError::Unsupported {
                                path: backing_path,
                                format: fmt.clone(),
                                detail: "backing file format".into(),
                            });
                        }
                    }
                    Some(open_layer(
                        &backing_path,
                        f.options,
                        f.stats,
                        chain,
                        f.depth + 1,
                    )?)
                }
                (Some(name), _) => {
                    return Err(ImageError::BackingNotAllowed {
                        path: path.to_path_buf(),
                        backing: name.clone(),
                    })
                }
            };
            Ok(Arc::new(qcow2::Qcow2Reader::new(
                reader, header, backing, path,
            )?))
        }
        DetectedFormat::Vhd => {
            let footer = vhd::Footer::read(&*reader, path)?;
            let vhd = vhd::VhdReader::new(Arc::clone(&reader), &footer, path)?;
            // QEMU's name for the format, so a boot's overlay can name it.
            link.format = "vpc".into();
            link.virtual_size = vhd.size();
            link.subformat = Some(footer.kind().into());
            link.warnings = footer.warnings;
            chain.push(link);
            Ok(Arc::new(vhd))
        }
        DetectedFormat::Vhdx => {
            let vhdx = vhdx::VhdxReader::open(reader, path)?;
            link.format = "vhdx".into();
            link.virtual_size = vhdx.size();
            link.cluster_size = Some(vhdx.block_size());
            link.subformat = Some(vhdx.kind().into());
            chain.push(link);
            Ok(Arc::new(vhdx))
        }
        DetectedFormat::VmdkSparse => {
            let (vmdk, info) = vmdk::open_sparse(reader, path)?;
            Ok(vmdk_link(link, vmdk, info, chain))
        }
        DetectedFormat::VmdkDescriptor => {
            let mut open_extent = |name: &str| match &follow {
                Some(f) => extent_file(path, name, f),
                None => Err(ImageError::Unsupported {
                    path: path.to_path_buf(),
                    format: "VMDK".into(),
                    detail: format!(
                        "a descriptor naming extent file `{name}`, opened without a directory"
                    ),
                }),
            };
            let (vmdk, info) = vmdk::open_descriptor(&*reader, path, &mut open_extent)?;
            Ok(vmdk_link(link, vmdk, info, chain))
        }
        DetectedFormat::Compressed(kind) if containers => match follow {
            Some(f) => {
                let mut inner = |r, c: &mut Vec<ChainLink>| open_format(r, path, None, c, false);
                container::open_compressed(path, kind, &f, chain, &mut inner)
            }
            None => Err(ImageError::Unsupported {
                path: path.to_path_buf(),
                format: format!("{}-compressed image", kind.name()),
                detail: "opened from a reader, with no cache to unpack it into".into(),
            }),
        },
        DetectedFormat::Tar if containers => {
            let mut inner = |r, c: &mut Vec<ChainLink>| open_format(r, path, None, c, false);
            let cache = follow
                .as_ref()
                .and_then(|f| f.options.unpack_dir.as_deref());
            container::open_tar(reader, path, path, "tar", cache, chain, &mut inner)
        }
        DetectedFormat::Encrypted => Err(ImageError::Encrypted {
            path: path.to_path_buf(),
            what: "a LUKS container".into(),
            detail: "`LUKS\\xba\\xbe` header".into(),
        }),
        DetectedFormat::Compressed(_) | DetectedFormat::Tar => Err(ImageError::Unsupported {
            path: path.to_path_buf(),
            format: "a container inside a container".into(),
            detail: "one compression and one archive are unwrapped, no more".into(),
        }),
        DetectedFormat::Unsupported { format, detail } => Err(ImageError::Unsupported {
            path: path.to_path_buf(),
            format: format.into(),
            detail: detail.into(),
        }),
    }
}

/// Records a VMDK's chain link and returns its disk.
fn vmdk_link(
    mut link: ChainLink,
    disk: Arc<dyn ReadAt>,
    info: vmdk::VmdkInfo,
    chain: &mut Vec<ChainLink>,
) -> Arc<dyn ReadAt> {
    link.format = "vmdk".into();
    link.virtual_size = disk.size();
    link.version = info.version;
    link.cluster_size = info.grain_bytes;
    link.compression = info.compressed.then(|| "deflate".into());
    link.subformat = Some(info.create_type);
    chain.push(link);
    disk
}

/// Opens an extent file a VMDK descriptor names: beside the descriptor
/// (a plain relative name), or anywhere only when backing files are
/// allowed (a name in an untrusted descriptor must not make bootproof
/// read arbitrary host files unasked).
fn extent_file(
    descriptor: &Path,
    name: &str,
    follow: &Follow<'_>,
) -> Result<Arc<dyn ReadAt>, ImageError> {
    let p = Path::new(name);
    let beside = p
        .components()
        .all(|c| matches!(c, std::path::Component::Normal(_)));
    if !beside && !follow.options.allow_backing {
        return Err(ImageError::BackingNotAllowed {
            path: descriptor.to_path_buf(),
            backing: name.into(),
        });
    }
    let path = resolve_backing(descriptor, name);
    let canonical = |p: &Path| std::fs::canonicalize(p).ok();
    if canonical(&path).is_some_and(|c| Some(c) == canonical(descriptor)) {
        return Err(ImageError::ChainLoop { path });
    }
    Ok(Arc::new(raw::HostFile::open(&path, follow.stats.clone())?))
}

/// A relative backing name is relative to the directory of the image that
/// names it (QEMU's rule), not to the current directory.
fn resolve_backing(image: &Path, name: &str) -> PathBuf {
    let p = Path::new(name);
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        image.parent().unwrap_or(Path::new(".")).join(p)
    }
}
