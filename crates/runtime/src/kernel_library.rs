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
//! named with `{release}`) and fetched the same way. The last resolution is recorded, so a run without network
//! uses the kernels it verified before, and says so.
//!
//! Indexes are streamed once and only `linux-*` stanzas are kept, with
//! every line, stanza count and byte total bounded: an index is input
//! from the network like any other.

use crate::catalog::{self, Entry};
use crate::events::Events;
use crate::host::{cache_dir, file_component};
use crate::Error;
use bootproof_image::Compression;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;

/// Largest index read, decompressed (Debian's arm64 main is ~50 MB).
const MAX_INDEX: u64 = 1 << 30;
/// Longest index line kept whole (a long `Depends` is ~2 KiB).
const MAX_LINE: usize = 64 << 10;
/// Most `linux-*` stanzas kept from one index.
const MAX_STANZAS: usize = 200_000;
/// Most `Depends` hops from a metapackage to its kernel.
const MAX_HOPS: usize = 8;

/// One kernel in the library.
#[derive(Debug, Clone, Deserialize, Serialize)]
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
    /// URL of the archive's package index (`…/Packages.xz`, `.gz` or plain).
    pub index: String,
    /// The package (or metapackage) in the index.
    pub package: String,
    /// The packages holding the kernel's modules, `{release}` standing for
    /// its release (`linux-modules-{release}`); by default every
    /// `linux-modules*-<release>` package the metapackage or kernel
    /// package depends on.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub companions: Vec<String>,
}

/// A named group of library kernels.
#[derive(Debug, Clone, Deserialize, Serialize)]
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
#[derive(Debug, Serialize, Deserialize)]
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

/// The fields of one index stanza bootproof uses.
#[derive(Debug, Default, Clone)]
struct Stanza {
    version: String,
    filename: String,
    sha256: String,
    depends: String,
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
    if !["https://", "http://", "file://"]
        .iter()
        .any(|p| k.index.starts_with(p))
        || !k.index.contains("/dists/")
    {
        return Err(bad(
            format!("index {} is not an archive's package index", k.index),
            "give the URL of …/dists/<suite>/<component>/binary-<arch>/Packages.xz",
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

/// Reads the `linux-*` stanzas of an index, bounded.
fn read_index(r: impl Read) -> Result<HashMap<String, Stanza>, String> {
    let mut r = BufReader::new(r.take(MAX_INDEX));
    let mut out: HashMap<String, Stanza> = HashMap::new();
    let (mut name, mut cur) = (String::new(), Stanza::default());
    let mut field = String::new();
    let mut line = Vec::new();
    loop {
        line.clear();
        let n = (&mut r)
            .take(MAX_LINE as u64 + 1)
            .read_until(b'\n', &mut line)
            .map_err(|e| e.to_string())?;
        if n > MAX_LINE {
            return Err(format!("a line longer than {MAX_LINE} bytes"));
        }
        let text = String::from_utf8_lossy(&line);
        let text = text.trim_end_matches(['\n', '\r']);
        if text.is_empty() {
            if name.starts_with("linux-") && !cur.filename.is_empty() {
                if out.len() >= MAX_STANZAS {
                    return Err(format!("more than {MAX_STANZAS} kernel stanzas"));
                }
                out.insert(std::mem::take(&mut name), std::mem::take(&mut cur));
            }
            name.clear();
            cur = Stanza::default();
            if n == 0 {
                return Ok(out);
            }
            continue;
        }
        if text.starts_with([' ', '\t']) {
            continue; // A continuation line (Description): not needed.
        }
        let Some((key, value)) = text.split_once(':') else {
            continue;
        };
        field.clear();
        field.push_str(key);
        let value = value.trim().to_string();
        match field.as_str() {
            "Package" => name = value,
            "Version" => cur.version = value,
            "Filename" => cur.filename = value,
            "SHA256" => cur.sha256 = value.to_ascii_lowercase(),
            "Depends" | "Pre-Depends" if name.starts_with("linux-") => {
                if !cur.depends.is_empty() {
                    cur.depends.push(',');
                }
                cur.depends.push_str(&value);
            }
            _ => {}
        }
    }
}

/// The package names a `Depends` value lists (first of each alternative).
fn depends(value: &str) -> impl Iterator<Item = &str> {
    value.split(',').filter_map(|d| {
        let first = d.split('|').next()?.trim();
        let name = first.split([' ', '(', ':']).next()?;
        (!name.is_empty()).then_some(name)
    })
}

/// Follows `package` through `linux-image-*` dependencies to the kernel
/// package: (name, stanza, every package on the way, the kernel's last).
fn follow<'a>(
    index: &'a HashMap<String, Stanza>,
    package: &str,
) -> Result<(String, &'a Stanza, Vec<String>), String> {
    let mut name = package.to_string();
    let mut seen = vec![name.clone()];
    for _ in 0..MAX_HOPS {
        let s = index
            .get(&name)
            .ok_or_else(|| format!("the index has no package {name}"))?;
        let next = depends(&s.depends)
            .find(|d| d.starts_with("linux-image-") && index.contains_key(*d))
            .map(str::to_string);
        match next {
            None => return Ok((name, s, seen)),
            Some(n) if seen.contains(&n) => {
                return Err(format!("a dependency cycle through {n}"));
            }
            Some(n) => {
                seen.push(n.clone());
                name = n;
            }
        }
    }
    Err(format!(
        "no kernel within {MAX_HOPS} dependencies of {package}"
    ))
}

/// The module packages that complete a kernel: those the entry names
/// (`{release}` replaced), else every `linux-modules*-<release>` package
/// the metapackage or the kernel package depends on (Ubuntu's
/// `linux-modules-…` and, before 7.0, `linux-modules-extra-…`), and
/// theirs, once each.
fn companion_names(
    index: &HashMap<String, Stanza>,
    chain: &[String],
    release: &str,
    named: &[String],
) -> Vec<String> {
    if !named.is_empty() {
        return named
            .iter()
            .map(|c| c.replace("{release}", release))
            .collect();
    }
    let mut out: Vec<String> = Vec::new();
    let mut todo: Vec<String> = chain.to_vec();
    while let Some(p) = todo.pop() {
        let Some(s) = index.get(&p) else { continue };
        for d in depends(&s.depends) {
            let module_package = d.starts_with("linux-modules") && d.ends_with(release);
            if module_package && index.contains_key(d) && !out.iter().any(|o| o == d) {
                out.push(d.to_string());
                todo.push(d.to_string());
            }
        }
    }
    out.sort();
    out
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

/// What `index` (a `Packages` file, decompressed) says to download for
/// `package`: the kernel package it leads to, then its module packages
/// (`companions`, or those found through `Depends`). Pure: the fuzz
/// target drives it with arbitrary bytes.
pub fn resolve_in(
    index: impl Read,
    package: &str,
    companions: &[String],
) -> Result<Vec<IndexedPackage>, String> {
    let index = read_index(index)?;
    let (name, stanza, chain) = follow(&index, package)?;
    let release = name.trim_start_matches("linux-image-").to_string();
    let indexed = |name: &str, s: &Stanza| IndexedPackage {
        name: name.to_string(),
        version: s.version.clone(),
        filename: s.filename.clone(),
        sha256: s.sha256.clone(),
    };
    let mut out = vec![indexed(&name, stanza)];
    for c in companion_names(&index, &chain, &release, companions) {
        let s = index
            .get(&c)
            .ok_or_else(|| format!("no companion package {c}"))?;
        out.push(indexed(&c, s));
    }
    Ok(out)
}

/// A catalog entry for one package of the index, pinned to its digest.
fn package_entry(k: &LibraryKernel, s: &IndexedPackage) -> Result<Entry, String> {
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
        format!("{}/{}", archive_root(&k.index), s.filename),
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
    let index = match open_index(&k.index) {
        Ok(i) => i,
        Err(e) => return last_resolution(k, &e).ok_or_else(|| fail(e)),
    };
    let packages = resolve_in(index, &k.package, &k.companions)
        .map_err(|e| fail(format!("{}: {e}", k.index)))?;
    let mut all = Vec::new();
    for p in &packages {
        all.push(catalog::ensure(
            &package_entry(k, p).map_err(&fail)?,
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
    let mut r = BufReader::new(r);
    let head = r.fill_buf().map_err(|e| format!("{url}: {e}"))?;
    Ok(match Compression::sniff(head) {
        Some(c) => c.decoder(r).map_err(|e| format!("{url}: {e}"))?,
        None => Box::new(r),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const INDEX: &str = "Package: linux-image-arm64\nVersion: 6.1.158-1\nDepends: linux-image-6.1.0-41-arm64 (= 6.1.158-1)\nFilename: pool/main/l/linux-signed-arm64/linux-image-arm64_6.1.158-1_arm64.deb\nSHA256: 1111111111111111111111111111111111111111111111111111111111111111\n\nPackage: linux-image-6.1.0-41-arm64\nVersion: 6.1.158-1\nDepends: kmod, linux-base (>= 4.3~), initramfs-tools (>= 0.120+deb8u2) | linux-initramfs-tool\nDescription: Linux 6.1\n continuation: not a field\nFilename: pool/main/l/linux/linux-image-6.1.0-41-arm64_6.1.158-1_arm64.deb\nSHA256: 2222222222222222222222222222222222222222222222222222222222222222\n\nPackage: vim\nFilename: pool/main/v/vim.deb\n";

    #[test]
    fn a_metapackage_leads_to_its_kernel() {
        let index = read_index(INDEX.as_bytes()).unwrap();
        assert_eq!(index.len(), 2, "only linux-* stanzas are kept");
        let (name, s, chain) = follow(&index, "linux-image-arm64").unwrap();
        assert_eq!(name, "linux-image-6.1.0-41-arm64");
        assert_eq!(chain, ["linux-image-arm64", "linux-image-6.1.0-41-arm64"]);
        assert!(s.sha256.starts_with("2222"));
        assert!(companion_names(&index, &chain, "6.1.0-41-arm64", &[]).is_empty());
        assert!(follow(&index, "linux-image-amd64")
            .unwrap_err()
            .contains("no package"));
    }

    /// Ubuntu's layout: the metapackage and the signed image depend on the
    /// module packages of the release (and on unrelated ones).
    #[test]
    fn ubuntu_module_packages_are_found_through_depends() {
        let text = "Package: linux-image-generic\nDepends: linux-image-6.8.0-1-generic, linux-modules-extra-6.8.0-1-generic, linux-firmware\nFilename: m\n\nPackage: linux-image-6.8.0-1-generic\nDepends: kmod, linux-modules-6.8.0-1-generic\nFilename: i\n\nPackage: linux-modules-6.8.0-1-generic\nFilename: a\n\nPackage: linux-modules-extra-6.8.0-1-generic\nDepends: linux-modules-6.8.0-1-generic, wireless-regdb\nFilename: b\n\nPackage: linux-firmware\nFilename: f\n\n";
        let index = read_index(text.as_bytes()).unwrap();
        let (name, _, chain) = follow(&index, "linux-image-generic").unwrap();
        let release = name.trim_start_matches("linux-image-");
        assert_eq!(
            companion_names(&index, &chain, release, &[]),
            [
                "linux-modules-6.8.0-1-generic",
                "linux-modules-extra-6.8.0-1-generic"
            ]
        );
        let named = ["linux-modules-{release}".to_string()];
        assert_eq!(
            companion_names(&index, &chain, release, &named),
            ["linux-modules-6.8.0-1-generic"]
        );
    }

    #[test]
    fn dependency_cycles_and_long_lines_are_errors() {
        let cyc = "Package: linux-image-a\nDepends: linux-image-b\nFilename: a\n\nPackage: linux-image-b\nDepends: linux-image-a\nFilename: b\n\n";
        let index = read_index(cyc.as_bytes()).unwrap();
        assert!(follow(&index, "linux-image-a")
            .unwrap_err()
            .contains("cycle"));
        let long = format!("Package: linux-x\nDepends: {}\n", "a".repeat(MAX_LINE + 10));
        assert!(read_index(long.as_bytes()).unwrap_err().contains("longer"));
    }

    #[test]
    fn file_names_that_leave_the_archive_are_refused() {
        let k = LibraryKernel {
            name: "k".into(),
            arch: "aarch64".into(),
            description: String::new(),
            notes: String::new(),
            index: "https://a.example/debian/dists/x/main/binary-arm64/Packages.xz".into(),
            package: "linux-image-arm64".into(),
            companions: vec![],
        };
        let mut s = IndexedPackage {
            name: "p".into(),
            version: "1".into(),
            filename: "pool/../../etc/passwd".into(),
            sha256: "a".repeat(64),
        };
        assert!(package_entry(&k, &s).unwrap_err().contains("file name"));
        s.filename = "pool/main/l/linux/k.deb".into();
        let e = package_entry(&k, &s).unwrap();
        assert_eq!(e.url, "https://a.example/debian/pool/main/l/linux/k.deb");
        assert!(validate(&k, "t").is_ok());
    }
}
