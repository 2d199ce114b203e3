//! Kernels from outside an image, booted with an image's root filesystem
//! (`bootproof run --kernel`): a Debian kernel package
//! (`linux-image-<version>_<arch>.deb`), an RPM one (`kernel-core-….rpm`,
//! read by [`crate::rpm`]), a directory holding an unpacked
//! one (`boot/vmlinuz-<version>` and `lib/modules/<version>/`, as
//! `dpkg-deb -x` leaves it, or the Fedora layout with the kernel inside
//! `lib/modules/<version>/vmlinuz`), or a bare kernel file with an
//! optional module directory.
//!
//! A package is read in-process (the `ar` container, then its
//! `data.tar.{xz,zst,gz}` streamed through the matching decoder) and only
//! the kernel and its module tree are written, once, to a cache directory
//! named by the package's SHA-256, so later runs start at once. Nothing in
//! the package is trusted: paths that leave the tree, links, device nodes
//! and sizes past fixed limits are refused or skipped, and a cache entry
//! appears only complete (unpacked beside it, then renamed).

use crate::kernel;
use bootproof_image::digest::HashingReader;
use bootproof_image::read_up_to;
use bootproof_platform::Arch;
use std::io::{self, Read};
use std::path::{Component, Path, PathBuf};

/// Most bytes unpacked from one package (Debian's arm64 kernel and modules
/// are about 450 MiB).
pub const MAX_UNPACKED: u64 = 4 << 30;
/// Most tar entries looked at in one package (Debian's have about 7,000).
pub const MAX_ENTRIES: u64 = 200_000;
/// Largest kernel file read to identify it.
const MAX_KERNEL_FILE: u64 = 256 << 20;

/// Why a kernel could not be used.
#[derive(Debug, thiserror::Error)]
pub enum PackageError {
    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: io::Error,
    },
    /// The package or kernel is damaged or hostile.
    #[error("{0}")]
    Corrupt(String),
    /// Well formed, but not something bootproof can boot.
    #[error("{0}")]
    Unsupported(String),
}

fn io_at(path: &Path) -> impl FnOnce(io::Error) -> PackageError + '_ {
    move |source| PackageError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// What the kernel came as.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Origin {
    /// A `.deb` or `.rpm` package (with any companions), unpacked into
    /// the cache.
    Package,
    /// A directory with an unpacked package.
    Directory,
    /// A kernel file.
    File,
}

/// A kernel ready to boot, with where its modules are.
#[derive(Debug, Clone, serde::Serialize, schemars::JsonSchema)]
pub struct ExternalKernel {
    /// The file QEMU loads.
    pub kernel: PathBuf,
    /// Its release (`uname -r`).
    pub version: String,
    /// The kernel's architecture.
    pub arch: Arch,
    /// `lib/modules/<version>`, when there is one.
    pub modules: Option<PathBuf>,
    /// SHA-256 of the kernel file.
    pub sha256: String,
    /// What it came as.
    pub origin: Origin,
}

/// Resolves `path` (package, directory or kernel file) to a bootable
/// kernel. `modules` names the module directory for a bare kernel file
/// (`lib/modules/<version>`); packages are unpacked under `cache`.
pub fn open(
    path: &Path,
    modules: Option<&Path>,
    cache: &Path,
) -> Result<ExternalKernel, PackageError> {
    let meta = std::fs::metadata(path).map_err(io_at(path))?;
    if meta.is_dir() {
        let mut k = from_tree(path)?;
        if let Some(m) = modules {
            k.modules = Some(m.to_path_buf());
        }
        return Ok(k);
    }
    if is_package(path)? {
        let tree = unpack_cached(path, cache)?;
        if !has_kernel(&tree) {
            return Err(PackageError::Unsupported(format!(
                "{}: the package holds no kernel (no boot/vmlinuz-<version> or \
                 lib/modules/<version>/vmlinuz); a package that only depends on the \
                 kernel's needs the package it depends on instead (Debian's Linux 7 \
                 linux-image-<version> depends on linux-binary-<version> and \
                 linux-modules-<version>; Fedora's `kernel` on `kernel-core`)",
                path.display()
            )));
        }
        let mut k = from_tree(&tree)?;
        k.origin = Origin::Package;
        if let Some(m) = modules {
            k.modules = Some(m.to_path_buf());
        }
        return Ok(k);
    }
    let (arch, version, sha256) = identify(path)?;
    let version = version.ok_or_else(|| {
        PackageError::Unsupported(format!(
            "{}: the kernel carries no release string (no `Linux version` banner or setup header version)",
            path.display()
        ))
    })?;
    Ok(ExternalKernel {
        kernel: path.to_path_buf(),
        version,
        arch,
        modules: modules.map(Path::to_path_buf),
        sha256,
        origin: Origin::File,
    })
}

/// The kernel's architecture, release and SHA-256.
fn identify(path: &Path) -> Result<(Arch, Option<String>, String), PackageError> {
    let len = std::fs::metadata(path).map_err(io_at(path))?.len();
    if len > MAX_KERNEL_FILE {
        return Err(PackageError::Unsupported(format!(
            "{}: {len} bytes is larger than any kernel ({MAX_KERNEL_FILE} at most)",
            path.display()
        )));
    }
    // Streamed: the facts and the file's digest in one read, the kernel
    // never held.
    let file = std::fs::File::open(path).map_err(io_at(path))?;
    let mut read = HashingReader::new(std::io::BufReader::new(file));
    let info = kernel::load_stream(&mut read, &mut io::sink())
        .map_err(|e| PackageError::Unsupported(format!("{}: {e}", path.display())))?;
    let sha256 = read.finish().map_err(io_at(path))?;
    let arch = Arch::parse(info.arch).ok_or_else(|| {
        PackageError::Unsupported(format!(
            "{}: a {} kernel; bootproof boots {}",
            path.display(),
            info.arch,
            Arch::names()
        ))
    })?;
    Ok((arch, info.version, sha256))
}

/// The kernels in an unpacked package tree, with their releases, sorted.
fn kernels_in(dir: &Path) -> Vec<(PathBuf, String)> {
    let mut found: Vec<(PathBuf, String)> = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir.join("boot")) {
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if let Some(v) = name
                .strip_prefix("vmlinuz-")
                .or_else(|| name.strip_prefix("vmlinux-"))
            {
                found.push((e.path(), v.to_string()));
            }
        }
    }
    for mods in ["lib/modules", "usr/lib/modules"] {
        if let Ok(rd) = std::fs::read_dir(dir.join(mods)) {
            for e in rd.flatten() {
                let k = e.path().join("vmlinuz");
                let v = e.file_name().to_string_lossy().into_owned();
                if k.is_file() && !found.iter().any(|(_, f)| *f == v) {
                    found.push((k, v));
                }
            }
        }
    }
    found.sort();
    found
}

/// Whether an unpacked package tree holds a kernel.
pub(crate) fn has_kernel(dir: &Path) -> bool {
    !kernels_in(dir).is_empty()
}

/// Whether `path` is a kernel package (`.deb` or `.rpm`, by magic).
pub(crate) fn is_package(path: &Path) -> Result<bool, PackageError> {
    if std::fs::metadata(path).map_err(io_at(path))?.is_dir() {
        return Ok(false);
    }
    let mut magic = [0u8; 8];
    let n = std::fs::File::open(path)
        .and_then(|mut f| read_up_to(&mut f, &mut magic))
        .map_err(io_at(path))?;
    Ok(magic[..n] == *AR_MAGIC || magic[..n.min(4)] == crate::rpm::RPM_MAGIC)
}

/// A kernel in an unpacked package tree: `boot/vmlinuz-<v>` (Debian,
/// Ubuntu) or `{usr/,}lib/modules/<v>/vmlinuz` (Fedora), with the module
/// directory beside it.
fn from_tree(dir: &Path) -> Result<ExternalKernel, PackageError> {
    let mut found = kernels_in(dir);
    let (kernel, version) = match found.len() {
        1 => found.remove(0),
        0 => {
            return Err(PackageError::Unsupported(format!(
                "{}: no kernel (boot/vmlinuz-<version> or lib/modules/<version>/vmlinuz)",
                dir.display()
            )))
        }
        _ => {
            return Err(PackageError::Unsupported(format!(
                "{}: {} kernels ({}); name one file, with its module directory",
                dir.display(),
                found.len(),
                found
                    .iter()
                    .map(|(p, _)| p.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            )))
        }
    };
    let (arch, banner, sha256) = identify(&kernel)?;
    if let Some(b) = banner.filter(|b| *b != version) {
        return Err(PackageError::Corrupt(format!(
            "{}: the file name says release {version}, the kernel says {b}",
            kernel.display()
        )));
    }
    let modules = ["lib/modules", "usr/lib/modules"]
        .iter()
        .map(|m| dir.join(m).join(&version))
        .find(|p| p.is_dir());
    Ok(ExternalKernel {
        kernel,
        version,
        arch,
        modules,
        sha256,
        origin: Origin::Directory,
    })
}

/// Unpacks the package's kernel and modules into `cache/kernels/<sha256>`
/// unless they are already there; returns that directory.
pub(crate) fn unpack_cached(deb: &Path, cache: &Path) -> Result<PathBuf, PackageError> {
    let digest =
        bootproof_image::digest::sha256_file_remembered(deb, &cache.join("kernel-digests"))
            .map_err(io_at(deb))?;
    let dest = cache.join("kernels").join(&digest);
    if dest.is_dir() {
        return Ok(dest);
    }
    let parent = cache.join("kernels");
    std::fs::create_dir_all(&parent).map_err(io_at(&parent))?;
    remove_abandoned(&parent);
    let tmp = parent.join(format!(
        ".{digest}.{}.{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos())
    ));
    let result = std::fs::File::open(deb)
        .map_err(io_at(deb))
        .and_then(|f| unpack(io::BufReader::new(f), &tmp, deb));
    if let Err(e) = result {
        let _ = std::fs::remove_dir_all(&tmp);
        return Err(e);
    }
    // Another run may have finished first: its copy is as good as ours.
    if std::fs::rename(&tmp, &dest).is_err() {
        let _ = std::fs::remove_dir_all(&tmp);
        if !dest.is_dir() {
            return Err(PackageError::Io {
                path: dest,
                source: io::Error::other("could not move the unpacked package into place"),
            });
        }
    }
    Ok(dest)
}

/// Removes what killed processes left half-written in `dir`: entries
/// named `.<name>.<pid>.<suffix>` whose process no longer exists (a live
/// one may still be writing). Used for the kernel cache and for image
/// downloads.
pub fn remove_abandoned(dir: &Path) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if !name.starts_with('.') {
            continue;
        }
        let mut parts = name.rsplit('.');
        let (Some(_suffix), Some(pid)) = (parts.next(), parts.next()) else {
            continue;
        };
        let Ok(pid) = pid.parse::<u32>() else {
            continue;
        };
        if pid != std::process::id() && !Path::new(&format!("/proc/{pid}")).exists() {
            let p = e.path();
            let _ = std::fs::remove_dir_all(&p).or_else(|_| std::fs::remove_file(&p));
        }
    }
}

/// Whether a path inside a kernel package is one bootproof needs.
fn wanted(rel: &Path) -> bool {
    let s = rel.to_string_lossy();
    s.starts_with("boot/vmlinuz-")
        || s.starts_with("boot/vmlinux-")
        || s.starts_with("boot/config-")
        || s.starts_with("lib/modules/")
        || s.starts_with("usr/lib/modules/")
}

/// The tar path as a relative path of plain components, or `None` if it
/// would leave the tree (`..`, absolute) or is empty.
pub fn clean_path(raw: &Path) -> Option<PathBuf> {
    let mut out = PathBuf::new();
    for c in raw.components() {
        match c {
            Component::Normal(p) => out.push(p),
            Component::CurDir => {}
            Component::ParentDir | Component::RootDir | Component::Prefix(_) => return None,
        }
    }
    (!out.as_os_str().is_empty()).then_some(out)
}

fn unpack(package: impl Read, dest: &Path, name: &Path) -> Result<(), PackageError> {
    std::fs::create_dir_all(dest).map_err(io_at(dest))?;
    let mut package = io::BufReader::new(package);
    let is_rpm = io::BufRead::fill_buf(&mut package)
        .map_err(io_at(name))?
        .starts_with(&crate::rpm::RPM_MAGIC);
    let mut write = |rel: &Path, data: &mut dyn Read| {
        if !wanted(rel) {
            return Ok(());
        }
        let path = dest.join(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        let mut out = std::fs::File::create(&path)?;
        io::copy(data, &mut out)?;
        Ok(())
    };
    if is_rpm {
        crate::rpm::walk_rpm(package, name, &mut write)
    } else {
        walk_deb(package, name, &mut write)
    }
}

/// Streams the regular files of a `.deb`'s data tarball to `visit` as
/// (clean relative path, contents). Links, devices and paths that would
/// leave the tree are skipped; more than [`MAX_ENTRIES`] entries or
/// [`MAX_UNPACKED`] bytes is an error. `name` is for messages.
pub fn walk_deb(
    deb: impl Read,
    name: &Path,
    visit: &mut dyn FnMut(&Path, &mut dyn Read) -> io::Result<()>,
) -> Result<(), PackageError> {
    let corrupt = |what: String| PackageError::Corrupt(format!("{}: {what}", name.display()));
    let mut deb = deb;
    let mut magic = [0u8; 8];
    let n = read_up_to(&mut deb, &mut magic).map_err(|e| corrupt(e.to_string()))?;
    if magic[..n] != *AR_MAGIC {
        return Err(corrupt("not a Debian package (no `!<arch>` header)".into()));
    }
    let mut members = Vec::new();
    while let Some(member) = ar_header(&mut deb).map_err(|e| corrupt(e.to_string()))? {
        let mut body = (&mut deb).take(member.size);
        let id = member.name.as_str();
        let decoder: Box<dyn Read + '_> = match id {
            "data.tar" => Box::new(body),
            "data.tar.xz" => Box::new(liblzma::read::XzDecoder::new_stream(
                body,
                liblzma::stream::Stream::new_stream_decoder(
                    crate::decompress::LZMA_MEMLIMIT,
                    liblzma::stream::CONCATENATED,
                )
                .map_err(|e| corrupt(format!("{id}: {e}")))?,
            )),
            "data.tar.zst" => Box::new(
                zstd::stream::read::Decoder::new(body)
                    .map_err(|e| corrupt(format!("{id}: {e}")))?,
            ),
            "data.tar.gz" => Box::new(flate2::read::GzDecoder::new(body)),
            other if other.starts_with("data.tar") => {
                return Err(PackageError::Unsupported(format!(
                    "{}: {other}: only xz, zstd and gzip data tarballs are read",
                    name.display()
                )))
            }
            _ => {
                // Skip the member and its padding to an even offset.
                let skipped =
                    io::copy(&mut body, &mut io::sink()).map_err(|e| corrupt(e.to_string()))?;
                let pad = member.size % 2;
                if skipped != member.size
                    || io::copy(&mut (&mut deb).take(pad), &mut io::sink())
                        .map_err(|e| corrupt(e.to_string()))?
                        != pad
                {
                    return Err(corrupt(format!("truncated in member {id}")));
                }
                members.push(member.name);
                continue;
            }
        };
        return walk_tar(decoder, name, visit);
    }
    Err(corrupt(format!(
        "no data.tar member (members: {})",
        if members.is_empty() {
            "none".to_string()
        } else {
            members.join(", ")
        }
    )))
}

/// The `ar` archive signature.
const AR_MAGIC: &[u8; 8] = b"!<arch>\n";

/// One `ar` member header.
struct ArMember {
    /// The name, without the GNU `/` terminator.
    name: String,
    /// Bytes of data that follow (then one pad byte if odd).
    size: u64,
}

/// Reads the next 60-byte `ar` member header: name (16), mtime (12), uid
/// (6), gid (6), mode (8), size (10, decimal), "`\n". `None` at the end.
///
/// Written here rather than taken from the `ar` crate: fuzzing found that
/// crate (0.9) panicking on a GNU long-name index past its name table and
/// allocating whatever size a name-table header declares. A `.deb` needs
/// neither feature: its member names are short.
fn ar_header(r: &mut impl Read) -> io::Result<Option<ArMember>> {
    let mut h = [0u8; 60];
    let n = read_up_to(r, &mut h)?;
    if n == 0 {
        return Ok(None);
    }
    let bad = |what: &str| io::Error::new(io::ErrorKind::InvalidData, what.to_string());
    if n < h.len() {
        return Err(bad("truncated member header"));
    }
    if h[58..60] != *b"`\n" {
        return Err(bad("damaged member header (no terminator)"));
    }
    let name = String::from_utf8_lossy(&h[..16])
        .trim_end()
        .trim_end_matches('/')
        .to_string();
    let size = std::str::from_utf8(&h[48..58])
        .ok()
        .and_then(|s| s.trim_end().parse::<u64>().ok())
        .ok_or_else(|| bad("member size is not a decimal number"))?;
    Ok(Some(ArMember { name, size }))
}

fn walk_tar(
    data: impl Read,
    name: &Path,
    visit: &mut dyn FnMut(&Path, &mut dyn Read) -> io::Result<()>,
) -> Result<(), PackageError> {
    let corrupt = |what: String| PackageError::Corrupt(format!("{}: {what}", name.display()));
    let mut tar = tar::Archive::new(data);
    let entries = tar
        .entries()
        .map_err(|e| corrupt(format!("data tarball: {e}")))?;
    let (mut count, mut bytes) = (0u64, 0u64);
    for entry in entries {
        let mut entry = entry.map_err(|e| corrupt(format!("data tarball: {e}")))?;
        count += 1;
        if count > MAX_ENTRIES {
            return Err(corrupt(format!("more than {MAX_ENTRIES} files")));
        }
        if entry.header().entry_type() != tar::EntryType::Regular {
            continue;
        }
        let size = entry.size();
        bytes = bytes.saturating_add(size);
        if bytes > MAX_UNPACKED {
            return Err(corrupt(format!("more than {MAX_UNPACKED} bytes unpacked")));
        }
        let raw = entry
            .path()
            .map_err(|e| corrupt(format!("data tarball: {e}")))?
            .into_owned();
        let Some(rel) = clean_path(&raw) else {
            continue;
        };
        // `take`: a header's size is what the tar crate reads anyway; this
        // keeps a visitor from reading past it whatever the reader does.
        let mut body = Tracked {
            inner: (&mut entry).take(size),
            failed: false,
        };
        if let Err(e) = visit(&rel, &mut body) {
            // A read that failed is the package's fault (truncated,
            // damaged); anything else is the visitor's (a full disk).
            return Err(if body.failed {
                corrupt(format!("{}: {e}", rel.display()))
            } else {
                PackageError::Io {
                    path: rel,
                    source: e,
                }
            });
        }
    }
    Ok(())
}

/// A reader that remembers whether a read failed.
struct Tracked<R> {
    inner: R,
    failed: bool,
}

impl<R: Read> Read for Tracked<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.inner.read(buf).inspect_err(|_| self.failed = true)
    }
}

#[cfg(test)]
#[path = "package_tests.rs"]
mod tests;
