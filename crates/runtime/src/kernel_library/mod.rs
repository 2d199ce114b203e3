//! The kernel library: named kernels from distribution archives
//! (`[[kernel]]` in a catalog file) and named sets of them
//! (`[[kernel_set]]`), so `run --kernel-set NAME` boots an image's
//! userland on every kernel a product must support without anyone
//! downloading packages by hand.
//!
//! An entry names an archive's package index (Debian's and Ubuntu's
//! `dists/<suite>/<component>/binary-<arch>/Packages.xz`) and a package in
//! it, usually a metapackage (`linux-image-arm64`, `linux-image-generic`):
//! the index is the publisher's checksum file. The metapackage is followed
//! through its `Depends` to the real `linux-image-<release>`, that
//! package's `Filename` and `SHA256` are taken from the index, and the
//! download goes through the catalog's verified path (hashed as it streams,
//! kept only when it matches). Companion packages (Ubuntu's
//! `linux-modules-<release>`) are found through the same `Depends` (or
//! named with `{release}`) and fetched the same way.
//!
//! Or an entry names an RPM repository (`repo`: RHEL family, Fedora,
//! Oracle Linux) and its kernel package (`kernel-core`,
//! `kernel-uek-core`): `repodata/repomd.xml` gives the primary metadata
//! and its SHA-256, which gives the newest package's location and SHA-256
//! and its `-modules-core`/`-modules` packages of the same version
//! ([`rpm`]). Amazon Linux finds its repository through a mirror list
//! (`mirrorlist`: one repository URL per line; the first is used).
//!
//! The last resolution is recorded, so a run without network uses the
//! kernels it verified before, and says so. Indexes and metadata are
//! streamed once with every line, token, count and byte total bounded: they
//! are input from the network like any other.

use crate::catalog::{self, Entry};
use crate::events::Events;
use crate::host::{cache_dir, file_component};
use crate::Error;

mod deb;
mod rpm;
use bootproof_image::Compression;
pub use deb::resolve_in;
pub use rpm::{primary_location, resolve_in_primary};
use serde::{Deserialize, Serialize};
use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;

/// One kernel in the library.
#[derive(Debug, Clone, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LibraryKernel {
    /// The name `--kernel-set` members and `fetch` use.
    pub name: String,
    /// `aarch64` or `x86_64`.
    pub arch: String,
    /// What it is.
    #[serde(default)]
    pub description: String,
    /// Why it is in the library: what makes it tricky (BTF, backports,
    /// vendor rebases).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub notes: String,
    /// URL of a Debian-style archive's package index (`…/Packages.xz`,
    /// `.gz` or plain); or:
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub index: String,
    /// URL of an RPM repository (the directory holding `repodata/`); or:
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub repo: String,
    /// URL of a mirror list naming RPM repositories, one URL per line
    /// (Amazon Linux's `mirror.list`): the first is used.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub mirrorlist: String,
    /// The package (or metapackage) in the index or repository.
    pub package: String,
    /// The packages holding the kernel's modules: in an archive,
    /// `{release}` standing for its release (`linux-modules-{release}`;
    /// by default every `linux-modules*-<release>` package the metapackage
    /// or kernel package depends on); in an RPM repository, package names
    /// (by default `<base>-modules-core` and `<base>-modules` of a
    /// `<base>-core` package, where present).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub companions: Vec<String>,
}

impl LibraryKernel {
    /// How its packages are verified: always the current kernel of the
    /// archive's index or the repository's metadata.
    pub fn verified_by(&self) -> &'static str {
        if self.index.is_empty() {
            "latest: repomd"
        } else {
            "latest: archive index"
        }
    }
}

/// A named group of library kernels.
#[derive(Debug, Clone, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct KernelSet {
    /// The name `--kernel-set` takes.
    pub name: String,
    /// What it covers.
    #[serde(default)]
    pub description: String,
    /// Its kernels, by library name.
    pub kernels: Vec<String>,
}

/// A library kernel's packages in the cache, verified.
#[derive(Debug, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ResolvedKernel {
    /// The library name.
    pub name: String,
    /// The kernel package the metapackage led to.
    pub package: String,
    /// Its version in the archive.
    pub version: String,
    /// The downloaded kernel package.
    pub path: PathBuf,
    /// The downloaded companion packages.
    pub companions: Vec<PathBuf>,
    /// Why the index could not be read, when the last verified
    /// resolution was used instead.
    #[serde(skip)]
    pub stale: Option<String>,
    /// The packages as fetched now (empty when not fresh).
    #[serde(skip)]
    pub fetched: Vec<catalog::Fetched>,
}

/// Checks a library entry when a catalog file is read.
pub(crate) fn validate(k: &LibraryKernel, origin: &str) -> Result<(), Error> {
    let bad = |what: String, hint: &str| {
        Error::with_hint(format!("catalog {origin}: kernel {}: {what}", k.name), hint)
    };
    if bootproof_platform::Arch::parse(&k.arch).is_none() {
        return Err(bad(
            format!("arch = {:?}", k.arch),
            "use \"aarch64\" or \"x86_64\"",
        ));
    }
    let url = |u: &str| {
        ["https://", "http://", "file://"]
            .iter()
            .any(|p| u.starts_with(p))
    };
    let given: Vec<&str> = [&k.index, &k.repo, &k.mirrorlist]
        .into_iter()
        .filter(|u| !u.is_empty())
        .map(String::as_str)
        .collect();
    let fine = match given[..] {
        [u] if u == k.index => url(u) && u.contains("/dists/"),
        [u] => url(u),
        _ => false,
    };
    if !fine {
        return Err(bad(
            format!(
                "index = {:?}, repo = {:?}, mirrorlist = {:?}",
                k.index, k.repo, k.mirrorlist
            ),
            "give one: index = \"…/dists/<suite>/<component>/binary-<arch>/Packages.xz\", repo = \"<RPM repository URL, the directory holding repodata/>\" or mirrorlist = \"<URL of a list of such repositories>\"",
        ));
    }
    if k.package.is_empty() || k.package.contains(char::is_whitespace) {
        return Err(bad(
            format!("package = {:?}", k.package),
            "name one package",
        ));
    }
    Ok(())
}

/// Most bytes of a mirror list read.
const MAX_MIRROR_LIST: u64 = 64 << 10;

/// What a package's file name is relative to: the archive root, or the
/// RPM repository (the first a mirror list names).
fn base_url(k: &LibraryKernel) -> Result<String, String> {
    if !k.index.is_empty() {
        return Ok(archive_root(&k.index).to_string());
    }
    if k.mirrorlist.is_empty() {
        return Ok(k.repo.trim_end_matches('/').to_string());
    }
    let (r, _) = catalog::open_url(&k.mirrorlist)?;
    let mut text = String::new();
    r.take(MAX_MIRROR_LIST)
        .read_to_string(&mut text)
        .map_err(|e| format!("{}: {e}", k.mirrorlist))?;
    text.lines()
        .map(str::trim)
        .find(|l| {
            (l.starts_with("https://") || l.starts_with("http://"))
                && !l.contains(char::is_whitespace)
        })
        .map(|l| l.trim_end_matches('/').to_string())
        .ok_or_else(|| format!("{}: the mirror list names no repository", k.mirrorlist))
}

/// The archive root an index URL belongs to (before `/dists/`).
fn archive_root(index: &str) -> &str {
    index.split("/dists/").next().unwrap_or(index)
}

/// One package as an index lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexedPackage {
    /// Its name.
    pub name: String,
    /// Its version.
    pub version: String,
    /// Its path below the archive root (`pool/main/l/linux/…`).
    pub filename: String,
    /// Its SHA-256, lowercase hex, as the index gives it.
    pub sha256: String,
}

/// A catalog entry for one package of the index (file names relative to
/// `base`), pinned to its digest.
fn package_entry(k: &LibraryKernel, base: &str, s: &IndexedPackage) -> Result<Entry, String> {
    let what = &s.name;
    if s.sha256.len() != 64 || !s.sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(format!("the index gives {what} no SHA256"));
    }
    if s.filename.split('/').any(|c| c == ".." || c.is_empty()) {
        return Err(format!(
            "the index gives {what} the file name {:?}",
            s.filename
        ));
    }
    Ok(Entry::package(
        &k.name,
        &k.arch,
        format!("{base}/{}", s.filename),
        s.sha256.clone(),
    ))
}

/// Where the last verified resolution of `name` is recorded.
fn record_path(name: &str) -> PathBuf {
    cache_dir()
        .join("kernel-packages")
        .join(file_component(name))
        .join("resolved.json")
}

/// Resolves a library kernel through its index and puts its packages in
/// the cache, verified; without the index, the last verified resolution.
pub fn ensure_kernel(k: &LibraryKernel, events: &dyn Events) -> Result<ResolvedKernel, Error> {
    let fail = |what: String| {
        Error::with_hint(
            format!("kernel {}: {what}", k.name),
            "check the network and the library entry (`bootproof fetch` lists it); nothing was kept",
        )
    };
    let base = match base_url(k) {
        Ok(b) => b,
        Err(e) => return last_resolution(k, &e).ok_or_else(|| fail(e)),
    };
    let packages = if !k.index.is_empty() {
        let index = match open_index(&k.index) {
            Ok(i) => i,
            Err(e) => return last_resolution(k, &e).ok_or_else(|| fail(e)),
        };
        resolve_in(index, &k.package, &k.companions)
            .map_err(|e| fail(format!("{}: {e}", k.index)))?
    } else {
        let repomd = format!("{base}/repodata/repomd.xml");
        let located = catalog::open_url(&repomd)
            .and_then(|(r, _)| rpm::primary_location(r).map_err(|e| format!("{repomd}: {e}")));
        let (href, sha) = match located {
            Ok(l) => l,
            Err(e) => return last_resolution(k, &e).ok_or_else(|| fail(e)),
        };
        let primary = format!("{base}/{href}");
        let arch = bootproof_platform::Arch::parse(&k.arch).map_or("", |a| a.info().rpm);
        catalog::open_url(&primary)
            .and_then(|(r, _)| {
                rpm::resolve_verified(r, &sha, decoder, &k.package, &k.companions, arch)
            })
            .map_err(|e| fail(format!("{primary}: {e}")))?
    };
    let mut all = Vec::new();
    for p in &packages {
        all.push(catalog::ensure(
            &package_entry(k, &base, p).map_err(&fail)?,
            events,
        )?);
    }
    let path = all[0].path.clone();
    let companions = all[1..].iter().map(|f| f.path.clone()).collect();
    let r = ResolvedKernel {
        name: k.name.clone(),
        package: packages[0].name.clone(),
        version: packages[0].version.clone(),
        path,
        companions,
        stale: None,
        fetched: all,
    };
    let record = record_path(&k.name);
    if let Some(dir) = record.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    let _ = std::fs::write(&record, serde_json::to_vec_pretty(&r).unwrap_or_default());
    Ok(r)
}

/// The recorded resolution, when every package it names is still in the
/// cache as it was verified.
fn last_resolution(k: &LibraryKernel, why: &str) -> Option<ResolvedKernel> {
    let text = std::fs::read(record_path(&k.name)).ok()?;
    let mut r: ResolvedKernel = serde_json::from_slice(&text).ok()?;
    let all = std::iter::once(&r.path).chain(&r.companions);
    all.into_iter().all(|p| catalog::verified_copy(p)).then(|| {
        r.stale = Some(why.to_string());
        r
    })
}

/// Opens an index for reading, decompressed by its magic.
fn open_index(url: &str) -> Result<Box<dyn Read>, String> {
    let (r, _) = catalog::open_url(url)?;
    decoder(r).map_err(|e| format!("{url}: {e}"))
}

/// `r` decompressed by its magic (gzip, xz, zstd), or as it is.
fn decoder<'a>(r: Box<dyn Read + 'a>) -> Result<Box<dyn Read + 'a>, String> {
    let mut r = BufReader::new(r);
    let head = r.fill_buf().map_err(|e| e.to_string())?;
    Ok(match Compression::sniff(head) {
        Some(c) => c.decoder(r).map_err(|e| e.to_string())?,
        None => Box::new(r),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_that_leave_the_archive_are_refused() {
        let k = LibraryKernel {
            name: "k".into(),
            arch: "aarch64".into(),
            description: String::new(),
            notes: String::new(),
            index: "https://a.example/debian/dists/x/main/binary-arm64/Packages.xz".into(),
            repo: String::new(),
            mirrorlist: String::new(),
            package: "linux-image-arm64".into(),
            companions: vec![],
        };
        let mut s = IndexedPackage {
            name: "p".into(),
            version: "1".into(),
            filename: "pool/../../etc/passwd".into(),
            sha256: "a".repeat(64),
        };
        let base = base_url(&k).unwrap();
        assert_eq!(base, "https://a.example/debian");
        assert!(package_entry(&k, &base, &s)
            .unwrap_err()
            .contains("file name"));
        s.filename = "pool/main/l/linux/k.deb".into();
        let e = package_entry(&k, &base, &s).unwrap();
        assert_eq!(e.url, "https://a.example/debian/pool/main/l/linux/k.deb");
        assert!(validate(&k, "t").is_ok());
        let rpm = LibraryKernel {
            index: String::new(),
            repo: "https://r.example/9/BaseOS/aarch64/os/".into(),
            package: "kernel-core".into(),
            ..k.clone()
        };
        assert!(validate(&rpm, "t").is_ok());
        s.filename = "Packages/k/kernel-core.rpm".into();
        let e = package_entry(&rpm, &base_url(&rpm).unwrap(), &s).unwrap();
        assert_eq!(
            e.url,
            "https://r.example/9/BaseOS/aarch64/os/Packages/k/kernel-core.rpm"
        );
        let both = LibraryKernel {
            index: k.index.clone(),
            ..rpm.clone()
        };
        assert!(validate(&both, "t").is_err());
        let neither = LibraryKernel {
            repo: String::new(),
            ..rpm.clone()
        };
        assert!(validate(&neither, "t").is_err());
        let mirrored = LibraryKernel {
            mirrorlist: "https://cdn.example/al2023/mirror.list".into(),
            ..neither.clone()
        };
        assert!(validate(&mirrored, "t").is_ok());
        let two = LibraryKernel {
            mirrorlist: mirrored.mirrorlist.clone(),
            ..rpm
        };
        assert!(validate(&two, "t").is_err());
    }
}
