//! The image catalog: named distro images (`debian-12-arm64`, …) with where
//! to download them and how to verify them. `bootproof fetch NAME` puts an
//! image in the cache (`~/.cache/bootproof/images/<name>/`), verified
//! against a pinned digest or the publisher's own checksum file; a matrix
//! file's `[[image]] catalog = "NAME"` resolves through the same path, so
//! a run names what it tests instead of where a copy happens to be.
//!
//! No image is used unverified: an entry must pin `sha256`/`sha512` or
//! name a `checksums` file (`SHA256SUMS`, `SHA512SUMS`), and a download is
//! hashed as it streams, then renamed into place only if it matches. A
//! cached image is trusted again while its size and modification time are
//! what was verified.

use crate::events::Events;
use crate::host::{cache_dir, file_component};
use crate::kernel_library::{KernelSet, LibraryKernel};
use crate::Error;

mod document;
mod http;
use bootproof_platform::Arch;
pub use document::{CatalogListing, FetchDocument, FetchReport, ListedImage, FETCH_SCHEMA};
pub(crate) use http::open_url;
use http::{listed_digest, Hasher};
use serde::{Deserialize, Serialize};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

/// The built-in catalog.
const BUILT_IN: &str = include_str!("catalog.toml");
/// Largest checksum file read.
const MAX_CHECKSUMS: u64 = 4 << 20;
/// Largest image downloaded.
const MAX_IMAGE: u64 = 64 << 30;

/// A catalog file (TOML; `fetch --catalog`, docs/commands.md).
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CatalogFile {
    #[serde(default, rename = "image")]
    images: Vec<Entry>,
    #[serde(default, rename = "kernel")]
    kernels: Vec<LibraryKernel>,
    #[serde(default, rename = "kernel_set")]
    sets: Vec<KernelSet>,
}

/// One catalog image.
#[derive(Debug, Clone, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Entry {
    /// The name a matrix file or `fetch` uses.
    pub name: String,
    /// `aarch64` or `x86_64`.
    pub arch: String,
    /// What it is.
    #[serde(default)]
    pub description: String,
    /// `https://`, `http://` or `file://`.
    pub url: String,
    /// Pinned SHA-256 (hex).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    /// Pinned SHA-512 (hex).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha512: Option<String>,
    /// URL of a `SHA256SUMS`/`SHA512SUMS` file listing the image's file name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checksums: Option<String>,
    /// A kernel package of the library (cached under `kernel-packages/`),
    /// not an image.
    #[serde(skip)]
    kernel_package: bool,
}

impl Entry {
    /// How a download is verified: a pinned digest (the same bytes every
    /// time: a reproducible matrix) or the publisher's checksum file (its
    /// latest build).
    pub fn verified_by(&self) -> &'static str {
        if self.checksums.is_some() {
            "latest: checksum file"
        } else {
            "pinned digest"
        }
    }

    /// A kernel package of library kernel `name`, pinned to the digest its
    /// archive's index gives.
    pub(crate) fn package(name: &str, arch: &str, url: String, sha256: String) -> Entry {
        Entry {
            name: name.to_string(),
            arch: arch.to_string(),
            description: String::new(),
            url,
            sha256: Some(sha256),
            sha512: None,
            checksums: None,
            kernel_package: true,
        }
    }
}

/// The catalog: built-in entries, then each extra file's (same name
/// replaces): images, library kernels and kernel sets.
pub struct Catalog {
    entries: Vec<Entry>,
    kernels: Vec<LibraryKernel>,
    sets: Vec<KernelSet>,
}

fn parse(text: &str, origin: &str) -> Result<CatalogFile, Error> {
    let f: CatalogFile = toml::from_str(text).map_err(|e| {
        Error::with_hint(
            format!("catalog {origin}: {e}"),
            "keys: [[image]] name, arch, description, url, and one of sha256, sha512, checksums; [[kernel]] name, arch, description, notes, index or repo, package, companions; [[kernel_set]] name, description, kernels",
        )
    })?;
    for k in &f.kernels {
        crate::kernel_library::validate(k, origin)?;
    }
    for e in &f.images {
        let pins = [&e.sha256, &e.sha512, &e.checksums]
            .iter()
            .filter(|p| p.is_some())
            .count();
        if pins != 1 {
            return Err(Error::with_hint(
                format!(
                    "catalog {origin}: image {}: give exactly one of sha256, sha512, checksums",
                    e.name
                ),
                "bootproof never uses an image it cannot verify",
            ));
        }
        if Arch::parse(&e.arch).is_none() {
            return Err(Error::with_hint(
                format!("catalog {origin}: image {}: arch = {:?}", e.name, e.arch),
                "use \"aarch64\" or \"x86_64\"",
            ));
        }
        if file_name(&e.url).is_none() {
            return Err(Error::with_hint(
                format!(
                    "catalog {origin}: image {}: url {} names no file",
                    e.name, e.url
                ),
                "the URL must end in the image's file name",
            ));
        }
    }
    Ok(f)
}

/// The last path segment of a URL: the cached file's name.
fn file_name(url: &str) -> Option<&str> {
    let path = url.split(['?', '#']).next()?;
    let name = path.rsplit('/').next()?;
    (!name.is_empty() && name != "." && name != ".." && !path.ends_with("//")).then_some(name)
}

impl Catalog {
    /// The built-in catalog plus `extra` files (later ones win by name).
    pub fn load(extra: &[PathBuf]) -> Result<Catalog, Error> {
        let built_in = parse(BUILT_IN, "(built in)")?;
        let mut c = Catalog {
            entries: built_in.images,
            kernels: built_in.kernels,
            sets: built_in.sets,
        };
        let env = std::env::var_os("BOOTPROOF_CATALOG").map(PathBuf::from);
        for path in env.iter().chain(extra) {
            let text = std::fs::read_to_string(path).map_err(|e| {
                Error::with_hint(format!("catalog {}: {e}", path.display()), "check the path")
            })?;
            let f = parse(&text, &path.display().to_string())?;
            for e in f.images {
                c.entries.retain(|x| x.name != e.name);
                c.entries.push(e);
            }
            for k in f.kernels {
                c.kernels.retain(|x| x.name != k.name);
                c.kernels.push(k);
            }
            for s in f.sets {
                c.sets.retain(|x| x.name != s.name);
                c.sets.push(s);
            }
        }
        if let Some(k) = c
            .kernels
            .iter()
            .find(|k| c.entries.iter().any(|e| e.name == k.name))
        {
            return Err(Error::with_hint(
                format!(
                    "catalog: {} names both an image and a library kernel",
                    k.name
                ),
                "rename one of them",
            ));
        }
        for s in &c.sets {
            if let Some(m) = s
                .kernels
                .iter()
                .find(|m| !c.kernels.iter().any(|k| k.name == **m))
            {
                return Err(Error::with_hint(
                    format!(
                        "catalog: kernel set {} names {m:?}, which is no library kernel",
                        s.name
                    ),
                    "add a [[kernel]] entry of that name or fix the set",
                ));
            }
        }
        Ok(c)
    }

    /// The library's kernels.
    pub fn kernels(&self) -> &[LibraryKernel] {
        &self.kernels
    }

    /// The library's kernel sets.
    pub fn kernel_sets(&self) -> &[KernelSet] {
        &self.sets
    }

    /// The kernels of set `name`, or the one library kernel of that name.
    pub fn kernel_set(&self, name: &str) -> Result<Vec<&LibraryKernel>, Error> {
        let find = |n: &str| self.kernels.iter().find(|k| k.name == n);
        if let Some(s) = self.sets.iter().find(|s| s.name == name) {
            return Ok(s.kernels.iter().filter_map(|m| find(m)).collect());
        }
        find(name).map(|k| vec![k]).ok_or_else(|| {
            Error::with_hint(
                format!("no kernel set or library kernel {name:?}"),
                "`bootproof fetch` lists the kernel library; --catalog FILE adds [[kernel]] and [[kernel_set]] entries",
            )
        })
    }

    /// Every entry, built-in ones first.
    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    /// The entry called `name`.
    pub fn get(&self, name: &str) -> Result<&Entry, Error> {
        self.entries.iter().find(|e| e.name == name).ok_or_else(|| {
            Error::with_hint(
                format!("no image {name:?} in the catalog"),
                "`bootproof fetch` lists the catalog; --catalog FILE adds entries",
            )
        })
    }
}

/// Where the cache keeps an entry's image.
fn cached_path(e: &Entry) -> PathBuf {
    cache_dir()
        .join(if e.kernel_package {
            "kernel-packages"
        } else {
            "images"
        })
        .join(file_component(&e.name))
        .join(file_name(&e.url).unwrap_or("image"))
}

/// What was verified about a cached image (`<file>.verified.json`).
#[derive(Debug, Serialize, Deserialize, PartialEq)]
struct Verified {
    url: String,
    algorithm: String,
    digest: String,
    size: u64,
    mtime_ns: u128,
}

fn stamp(path: &Path) -> Option<(u64, u128)> {
    bootproof_image::digest::file_stamp(path).ok()
}

fn sidecar(path: &Path) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(".verified.json");
    PathBuf::from(s)
}

/// Where an entry's image is cached, when a verified copy is there.
pub fn cached_copy(e: &Entry) -> Option<PathBuf> {
    cached(e).map(|(p, _)| p)
}

/// What the cache verified about the file at `path`, while its size and
/// mtime are still what was verified.
fn still_verified(path: &Path) -> Option<Verified> {
    let v: Verified = serde_json::from_slice(&std::fs::read(sidecar(path)).ok()?).ok()?;
    (stamp(path)? == (v.size, v.mtime_ns)).then_some(v)
}

/// Whether the file at `path` is still what the cache verified.
pub(crate) fn verified_copy(path: &Path) -> bool {
    still_verified(path).is_some()
}

/// The cached image, if it is there and still what was verified.
fn cached(e: &Entry) -> Option<(PathBuf, Verified)> {
    let path = cached_path(e);
    let v = still_verified(&path)?;
    let pinned = e.sha256.as_ref().or(e.sha512.as_ref());
    (v.url == e.url && pinned.is_none_or(|p| p.eq_ignore_ascii_case(&v.digest)))
        .then_some((path, v))
}

/// A downloaded or cached image.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct Fetched {
    /// Catalog name.
    pub name: String,
    /// Where it is.
    pub path: PathBuf,
    /// `sha256` or `sha512`.
    pub algorithm: String,
    /// Its verified digest.
    pub digest: String,
    /// Its size.
    pub size: u64,
    /// Downloaded now (false: from the cache).
    pub downloaded: bool,
}

/// The expected (algorithm, digest) for an entry: pinned, or the line for
/// its file in the checksum file.
fn expected(e: &Entry) -> Result<(&'static str, String), String> {
    if let Some(d) = &e.sha256 {
        return Ok(("sha256", d.to_ascii_lowercase()));
    }
    if let Some(d) = &e.sha512 {
        return Ok(("sha512", d.to_ascii_lowercase()));
    }
    let url = e.checksums.as_deref().unwrap_or_default();
    let (r, _) = open_url(url)?;
    let mut text = String::new();
    r.take(MAX_CHECKSUMS)
        .read_to_string(&mut text)
        .map_err(|err| format!("{url}: {err}"))?;
    let want = file_name(&e.url).unwrap_or_default();
    if let Some(digest) = listed_digest(&text, want) {
        return match digest.len() {
            64 => Ok(("sha256", digest.to_ascii_lowercase())),
            128 => Ok(("sha512", digest.to_ascii_lowercase())),
            n => Err(format!("{url}: a {n}-digit digest for {want}")),
        };
    }
    Err(format!("{url} lists no checksum for {want}"))
}

/// Puts an entry's image in the cache (downloading and verifying it unless
/// a verified copy is there) and returns where it is. Downloads report
/// their progress to `events`.
pub fn ensure(e: &Entry, events: &dyn Events) -> Result<Fetched, Error> {
    if let Some((path, v)) = cached(e) {
        return Ok(Fetched {
            name: e.name.clone(),
            path,
            algorithm: v.algorithm,
            digest: v.digest,
            size: v.size,
            downloaded: false,
        });
    }
    let fail = |what: String| {
        Error::with_hint(
            format!("fetching {}: {what}", e.name),
            "check the network and the catalog entry; nothing was kept",
        )
    };
    let (algorithm, want) = expected(e).map_err(fail)?;
    let path = cached_path(e);
    let dir = path.parent().expect("cache path has a parent");
    std::fs::create_dir_all(dir).map_err(|err| fail(format!("{}: {err}", dir.display())))?;
    bootproof_boot::package::remove_abandoned(dir);
    let part = dir.join(format!(".download.{}.part", std::process::id()));
    let result = download(e, &part, algorithm, events);
    let (digest, size) = match result {
        Ok(x) => x,
        Err(err) => {
            let _ = std::fs::remove_file(&part);
            return Err(fail(err));
        }
    };
    if digest != want {
        let _ = std::fs::remove_file(&part);
        return Err(Error::with_hint(
            format!(
                "fetching {}: {algorithm} mismatch: expected {want}, the download has {digest}",
                e.name
            ),
            "the download was discarded; the publisher may have replaced the image (fetch again), or the copy is corrupt or tampered with",
        ));
    }
    std::fs::rename(&part, &path).map_err(|err| fail(format!("{}: {err}", path.display())))?;
    let (size_now, mtime_ns) = stamp(&path).unwrap_or((size, 0));
    let v = Verified {
        url: e.url.clone(),
        algorithm: algorithm.into(),
        digest: digest.clone(),
        size: size_now,
        mtime_ns,
    };
    std::fs::write(
        sidecar(&path),
        serde_json::to_vec_pretty(&v).unwrap_or_default(),
    )
    .map_err(|err| fail(err.to_string()))?;
    Ok(Fetched {
        name: e.name.clone(),
        path,
        algorithm: algorithm.into(),
        digest,
        size,
        downloaded: true,
    })
}

/// `bootproof fetch NAME`: an image, or every package of a library kernel
/// or kernel set, in the cache and verified.
pub fn fetch_named(
    catalog: &Catalog,
    name: &str,
    events: &dyn Events,
) -> Result<Vec<Fetched>, Error> {
    if let Ok(e) = catalog.get(name) {
        return Ok(vec![ensure(e, events)?]);
    }
    let mut out = Vec::new();
    for k in catalog.kernel_set(name).map_err(|_| {
        Error::with_hint(
            format!("no image, kernel or kernel set {name:?} in the catalog"),
            "`bootproof fetch` lists the catalog; --catalog FILE adds entries",
        )
    })? {
        let r = crate::kernel_library::ensure_kernel(k, events)?;
        if let Some(why) = r.stale {
            return Err(Error::with_hint(
                format!("kernel {}: {why}", k.name),
                "check the network; runs keep using the packages verified before",
            ));
        }
        out.extend(r.fetched);
    }
    Ok(out)
}

/// A matrix file's `catalog = "NAME"`: the verified cached image (fetched
/// first when needed) and the catalog's arch, which a `declared` arch must
/// agree with.
pub fn resolve(
    catalog: &Catalog,
    name: &str,
    declared: Option<Arch>,
    events: &dyn Events,
) -> Result<(PathBuf, Arch), Error> {
    let entry = catalog.get(name)?;
    let arch = Arch::parse(&entry.arch).expect("checked when the catalog was read");
    if let Some(a) = declared.filter(|a| *a != arch) {
        return Err(Error::with_hint(
            format!(
                "image {name}: the matrix file says arch = {:?}, the catalog {:?}",
                a.name(),
                entry.arch
            ),
            "drop `arch` (the catalog's is used) or fix it",
        ));
    }
    let fetched = ensure(entry, events)?;
    if fetched.downloaded {
        events.fetched(&fetched);
    }
    Ok((fetched.path, arch))
}

/// Streams the image to `part`, hashing it; returns (digest, size).
fn download(
    e: &Entry,
    part: &Path,
    algorithm: &str,
    events: &dyn Events,
) -> Result<(String, u64), String> {
    let (mut r, len) = open_url(&e.url)?;
    if len.is_some_and(|l| l > MAX_IMAGE) {
        return Err(format!(
            "{} bytes is more than {MAX_IMAGE}",
            len.unwrap_or(0)
        ));
    }
    events.download_started(&e.name, len);
    let result = stream(&mut r, e, part, algorithm, events);
    events.download_ended(&e.name);
    let (digest, total) = result?;
    if len.is_some_and(|l| l != total) {
        return Err(format!(
            "the server announced {} bytes and sent {total}",
            len.unwrap_or(0)
        ));
    }
    Ok((digest, total))
}

/// Copies the body to `part`, hashing it; returns (digest, size).
fn stream(
    r: &mut dyn Read,
    e: &Entry,
    part: &Path,
    algorithm: &str,
    events: &dyn Events,
) -> Result<(String, u64), String> {
    let mut out =
        std::fs::File::create(part).map_err(|err| format!("{}: {err}", part.display()))?;
    let mut hasher = Hasher::new(algorithm);
    let mut buf = vec![0u8; 1 << 20];
    let mut total = 0u64;
    loop {
        let n = r
            .read(&mut buf)
            .map_err(|err| format!("{}: {err}", e.url))?;
        if n == 0 {
            break;
        }
        total += n as u64;
        if total > MAX_IMAGE {
            return Err(format!("more than {MAX_IMAGE} bytes"));
        }
        hasher.update(&buf[..n]);
        out.write_all(&buf[..n])
            .map_err(|err| format!("{}: {err}", part.display()))?;
        events.download_progress(&e.name, total);
    }
    out.sync_all()
        .map_err(|err| format!("{}: {err}", part.display()))?;
    Ok((hasher.hex(), total))
}

#[cfg(test)]
mod tests;
