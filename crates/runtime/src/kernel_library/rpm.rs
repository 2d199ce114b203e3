//! RPM repositories (RHEL family, Fedora, Oracle Linux): `repodata/
//! repomd.xml` names the primary metadata and its SHA-256; the primary
//! metadata (gzip, xz or zstd XML) lists every package with its version,
//! SHA-256 and location. The newest `kernel-core` (or the entry's package)
//! of the arch is the kernel; its `-modules-core` and `-modules` packages
//! of the same version complete it.
//!
//! Both files are streamed through quick-xml (a maintained streaming
//! parser) behind a guard that bounds every tag and text to 1 MiB, so
//! memory stays small whatever the mirror sends; the primary metadata is
//! hashed as it streams and its answer used only when the digest is the
//! one repomd.xml gives.

use super::IndexedPackage;
use quick_xml::events::Event;
use std::cmp::Ordering;
use std::io::{BufReader, Read};

/// Largest metadata file read, decompressed (Fedora's primary is ~100 MB).
const MAX_METADATA: u64 = 1 << 30;
/// Longest tag or text between markup.
const MAX_TOKEN: usize = 1 << 20;
/// Most element nesting followed.
const MAX_DEPTH: usize = 64;
/// Most candidate packages kept.
const MAX_CANDIDATES: usize = 100_000;

/// A reader that fails when more than [`MAX_TOKEN`] bytes pass without a
/// `<` or `>`: the bound on any one event quick-xml would buffer.
struct TokenGuard<R> {
    inner: R,
    run: usize,
}

impl<R: Read> Read for TokenGuard<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        for &b in &buf[..n] {
            self.run = if b == b'<' || b == b'>' {
                0
            } else {
                self.run + 1
            };
            if self.run > MAX_TOKEN {
                return Err(std::io::Error::other(format!(
                    "a tag or text longer than {MAX_TOKEN} bytes"
                )));
            }
        }
        Ok(n)
    }
}

/// Calls `visit(path, attributes, text)` for every element, where `path`
/// is the element names from the root (local names) and `text` its
/// direct text, bounded in depth.
fn walk(
    r: impl Read,
    mut visit: impl FnMut(&[String], &[(String, String)], &str) -> Result<(), String>,
) -> Result<(), String> {
    let guard = TokenGuard {
        inner: r.take(MAX_METADATA),
        run: 0,
    };
    let mut reader = quick_xml::Reader::from_reader(BufReader::new(guard));
    let mut buf = Vec::new();
    let mut path: Vec<String> = Vec::new();
    let mut attrs: Vec<Vec<(String, String)>> = Vec::new();
    let mut text = String::new();
    loop {
        buf.clear();
        let event = reader
            .read_event_into(&mut buf)
            .map_err(|e| e.to_string())?;
        let open = |e: &quick_xml::events::BytesStart| {
            let name = String::from_utf8_lossy(e.local_name().as_ref()).into_owned();
            let a = e
                .attributes()
                .flatten()
                .map(|a| {
                    let k = String::from_utf8_lossy(a.key.local_name().as_ref()).into_owned();
                    let v = a
                        .unescape_value()
                        .map(|v| v.into_owned())
                        .unwrap_or_default();
                    (k, v)
                })
                .collect::<Vec<_>>();
            (name, a)
        };
        match event {
            Event::Start(e) => {
                if path.len() >= MAX_DEPTH {
                    return Err(format!("elements nested deeper than {MAX_DEPTH}"));
                }
                let (name, a) = open(&e);
                path.push(name);
                attrs.push(a);
                text.clear();
            }
            Event::Empty(e) => {
                let (name, a) = open(&e);
                path.push(name);
                visit(&path, &a, "")?;
                path.pop();
            }
            Event::Text(t) if text.len() < MAX_TOKEN => {
                text.push_str(&String::from_utf8_lossy(&t));
            }
            Event::End(_) => {
                let a = attrs.pop().unwrap_or_default();
                visit(&path, &a, text.trim())?;
                text.clear();
                path.pop();
            }
            Event::Eof => return Ok(()),
            _ => {}
        }
    }
}

fn attr<'a>(a: &'a [(String, String)], key: &str) -> &'a str {
    a.iter()
        .find(|(k, _)| k == key)
        .map_or("", |(_, v)| v.as_str())
}

/// Where repomd.xml says the primary metadata is, and its SHA-256.
pub fn primary_location(repomd: impl Read) -> Result<(String, String), String> {
    let (mut href, mut sha) = (String::new(), String::new());
    let mut found = None;
    walk(repomd, |path, a, text| {
        match (path.len(), path.last().map_or("", String::as_str)) {
            (3, "checksum") if attr(a, "type") == "sha256" => sha = text.to_lowercase(),
            (3, "location") => href = attr(a, "href").to_string(),
            (2, "data") => {
                let (h, s) = (std::mem::take(&mut href), std::mem::take(&mut sha));
                if attr(a, "type") == "primary" && found.is_none() {
                    found = Some((h, s));
                }
            }
            _ => {}
        }
        Ok(())
    })?;
    match found {
        Some((h, s)) if !h.is_empty() && s.len() == 64 => Ok((h, s)),
        Some(_) => Err("repomd.xml gives the primary metadata no location or sha256".into()),
        None => Err("repomd.xml names no primary metadata".into()),
    }
}

/// One package of the primary metadata.
#[derive(Debug, Clone, Default)]
struct RpmPackage {
    name: String,
    arch: String,
    epoch: String,
    ver: String,
    rel: String,
    sha256: String,
    href: String,
}

/// The packages named in `wanted`, of `arch`, that the primary metadata
/// lists.
fn candidates(
    primary: impl Read,
    wanted: &[String],
    arch: &str,
) -> Result<Vec<RpmPackage>, String> {
    let mut out = Vec::new();
    let mut cur = RpmPackage::default();
    walk(primary, |path, a, text| {
        let leaf = path.last().map_or("", String::as_str);
        match (path.len(), leaf) {
            (3, "name") => cur.name = text.to_string(),
            (3, "arch") => cur.arch = text.to_string(),
            (3, "version") => {
                cur.epoch = attr(a, "epoch").to_string();
                cur.ver = attr(a, "ver").to_string();
                cur.rel = attr(a, "rel").to_string();
            }
            (3, "checksum") if attr(a, "type") == "sha256" => cur.sha256 = text.to_lowercase(),
            (3, "location") => cur.href = attr(a, "href").to_string(),
            (2, "package") => {
                let p = std::mem::take(&mut cur);
                if p.arch == arch && wanted.contains(&p.name) {
                    if out.len() >= MAX_CANDIDATES {
                        return Err(format!("more than {MAX_CANDIDATES} kernel packages"));
                    }
                    out.push(p);
                }
            }
            _ => {}
        }
        Ok(())
    })?;
    Ok(out)
}

/// RPM's version comparison (`rpmvercmp`): alternating numeric and
/// alphabetic segments, numbers by value, `~` sorting before anything.
fn rpmvercmp(a: &str, b: &str) -> Ordering {
    let (mut a, mut b) = (a.as_bytes(), b.as_bytes());
    let sep = |c: &u8| !c.is_ascii_alphanumeric() && *c != b'~';
    loop {
        while a.first().is_some_and(sep) {
            a = &a[1..];
        }
        while b.first().is_some_and(sep) {
            b = &b[1..];
        }
        match (a.first() == Some(&b'~'), b.first() == Some(&b'~')) {
            (true, true) => {
                a = &a[1..];
                b = &b[1..];
                continue;
            }
            (true, false) => return Ordering::Less,
            (false, true) => return Ordering::Greater,
            _ => {}
        }
        if a.is_empty() || b.is_empty() {
            return a.len().cmp(&b.len());
        }
        let numeric = a[0].is_ascii_digit();
        let seg = |s: &[u8]| {
            s.iter()
                .position(|c| {
                    if numeric {
                        !c.is_ascii_digit()
                    } else {
                        !c.is_ascii_alphabetic()
                    }
                })
                .unwrap_or(s.len())
        };
        let (la, lb) = (seg(a), seg(b));
        if lb == 0 {
            // Segments of different kinds: a number is newer.
            return if numeric {
                Ordering::Greater
            } else {
                Ordering::Less
            };
        }
        let (sa, sb) = (&a[..la], &b[..lb]);
        let order = if numeric {
            let trim = |s: &[u8]| {
                s.iter()
                    .position(|c| *c != b'0')
                    .map_or(&s[s.len()..], |i| &s[i..])
                    .to_vec()
            };
            let (ta, tb) = (trim(sa), trim(sb));
            ta.len().cmp(&tb.len()).then(ta.cmp(&tb))
        } else {
            sa.cmp(sb)
        };
        if order != Ordering::Equal {
            return order;
        }
        a = &a[la..];
        b = &b[lb..];
    }
}

fn evr_cmp(x: &RpmPackage, y: &RpmPackage) -> Ordering {
    let epoch = |p: &RpmPackage| p.epoch.parse::<u64>().unwrap_or(0);
    epoch(x)
        .cmp(&epoch(y))
        .then_with(|| rpmvercmp(&x.ver, &y.ver))
        .then_with(|| rpmvercmp(&x.rel, &y.rel))
}

/// What the primary metadata (decompressed) says to download for
/// `package` of `arch`: its newest version, then the module packages of
/// that same version: `companions` when given, else `<base>-modules-core`
/// and `<base>-modules` (for a `<base>-core` package) where the
/// repository has them.
pub fn resolve_in_primary(
    primary: impl Read,
    package: &str,
    companions: &[String],
    arch: &str,
) -> Result<Vec<IndexedPackage>, String> {
    let base = package.strip_suffix("-core").unwrap_or(package);
    let named = !companions.is_empty();
    let companions: Vec<String> = if named {
        companions.to_vec()
    } else {
        vec![format!("{base}-modules-core"), format!("{base}-modules")]
    };
    let mut wanted = vec![package.to_string()];
    wanted.extend(companions.iter().cloned());
    let all = candidates(primary, &wanted, arch)?;
    let kernel = all
        .iter()
        .filter(|p| p.name == package)
        .max_by(|x, y| evr_cmp(x, y))
        .ok_or_else(|| format!("the repository has no {package} for {arch}"))?;
    let indexed = |p: &RpmPackage| IndexedPackage {
        name: p.name.clone(),
        version: if p.epoch.is_empty() || p.epoch == "0" {
            format!("{}-{}", p.ver, p.rel)
        } else {
            format!("{}:{}-{}", p.epoch, p.ver, p.rel)
        },
        filename: p.href.clone(),
        sha256: p.sha256.clone(),
    };
    let mut out = vec![indexed(kernel)];
    for c in &companions {
        // Built from the same source package: the same version strings
        // (not merely equal under rpmvercmp, which skips separators).
        let evr = |p: &RpmPackage| (p.epoch.clone(), p.ver.clone(), p.rel.clone());
        let same = all.iter().find(|p| p.name == *c && evr(p) == evr(kernel));
        match same {
            Some(p) => out.push(indexed(p)),
            None if named => {
                return Err(format!("the repository has no {c} {}", out[0].version));
            }
            None => {}
        }
    }
    Ok(out)
}

/// Reads the primary metadata at `open(href)`, checking its SHA-256
/// against repomd's once it has been read whole, then resolves as
/// [`resolve_in_primary`] does.
pub(super) fn resolve_verified(
    compressed: impl Read,
    want_sha256: &str,
    decode: impl FnOnce(Box<dyn Read + '_>) -> Result<Box<dyn Read + '_>, String>,
    package: &str,
    companions: &[String],
    arch: &str,
) -> Result<Vec<IndexedPackage>, String> {
    let mut hashing = bootproof_image::digest::HashingReader::new(compressed);
    let result = {
        let mut plain = decode(Box::new(&mut hashing))?;
        let r = resolve_in_primary(&mut plain, package, companions, arch);
        // Whatever the parser left unread still counts for the digest.
        std::io::copy(&mut plain, &mut std::io::sink()).map_err(|e| e.to_string())?;
        r
    };
    let got = hashing.finish().map_err(|e| e.to_string())?;
    if !got.eq_ignore_ascii_case(want_sha256) {
        return Err(format!(
            "the primary metadata's sha256 is {got}, repomd.xml says {want_sha256}"
        ));
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_compare_as_rpm_compares_them() {
        for (a, b, o) in [
            ("5.14.0", "5.14.0", Ordering::Equal),
            ("5.14.0", "5.9.0", Ordering::Greater),
            ("503.11.1.el9_5", "503.2.1.el9_5", Ordering::Greater),
            ("1.0~rc1", "1.0", Ordering::Less),
            ("1.0a", "1.0", Ordering::Greater),
            ("1.0", "1.a", Ordering::Greater),
            ("007", "7", Ordering::Equal),
        ] {
            assert_eq!(rpmvercmp(a, b), o, "{a} vs {b}");
            assert_eq!(rpmvercmp(b, a), o.reverse(), "{b} vs {a}");
        }
    }

    const PRIMARY: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<metadata xmlns="http://linux.duke.edu/metadata/common" xmlns:rpm="http://linux.duke.edu/metadata/rpm" packages="4">
<package type="rpm"><name>kernel-core</name><arch>aarch64</arch><version epoch="0" ver="5.14.0" rel="70.13.1.el9_0"/><checksum type="sha256" pkgid="YES">aa</checksum><location href="Packages/k/kernel-core-old.rpm"/><format><rpm:provides><rpm:entry name="kernel"/></rpm:provides></format></package>
<package type="rpm"><name>kernel-core</name><arch>aarch64</arch><version epoch="0" ver="5.14.0" rel="503.11.1.el9_5"/><checksum type="sha256" pkgid="YES">bb</checksum><location href="Packages/k/kernel-core-new.rpm"/></package>
<package type="rpm"><name>kernel-modules</name><arch>aarch64</arch><version epoch="0" ver="5.14.0" rel="503.11.1.el9_5"/><checksum type="sha256" pkgid="YES">cc</checksum><location href="Packages/k/kernel-modules-new.rpm"/></package>
<package type="rpm"><name>kernel-core</name><arch>x86_64</arch><version epoch="0" ver="6.0.0" rel="1"/><checksum type="sha256" pkgid="YES">dd</checksum><location href="Packages/k/x.rpm"/></package>
</metadata>"#;

    #[test]
    fn the_newest_kernel_of_the_arch_and_its_modules_are_chosen() {
        let p = resolve_in_primary(PRIMARY.as_bytes(), "kernel-core", &[], "aarch64").unwrap();
        let names: Vec<(&str, &str)> = p
            .iter()
            .map(|p| (p.name.as_str(), p.filename.as_str()))
            .collect();
        assert_eq!(
            names,
            [
                ("kernel-core", "Packages/k/kernel-core-new.rpm"),
                ("kernel-modules", "Packages/k/kernel-modules-new.rpm")
            ]
        );
        assert_eq!(p[0].version, "5.14.0-503.11.1.el9_5");
        let e = resolve_in_primary(
            PRIMARY.as_bytes(),
            "kernel-core",
            &["kernel-modules-core".into()],
            "aarch64",
        );
        assert!(e.unwrap_err().contains("no kernel-modules-core"));
        assert!(resolve_in_primary(PRIMARY.as_bytes(), "kernel-uek-core", &[], "aarch64").is_err());
        // A module package whose version only rpmvercmp calls equal (it
        // skips separators) is not the kernel's: fuzz finding, kept as
        // regress-companion-version-spelled-differently.
        let modules = r#"<name>kernel-modules</name><arch>aarch64</arch><version epoch="0" ver="5.14.0" rel="503.11.1.el9_5"/>"#;
        assert!(PRIMARY.contains(modules));
        let odd = PRIMARY.replace(modules, &modules.replace("1.el9_5", "1*el9_5"));
        let p = resolve_in_primary(odd.as_bytes(), "kernel-core", &[], "aarch64").unwrap();
        assert_eq!(p.len(), 1, "{p:?}");
    }

    #[test]
    fn repomd_names_the_primary_metadata() {
        let repomd = r#"<repomd xmlns="http://linux.duke.edu/metadata/repo"><revision>1</revision>
<data type="filelists"><checksum type="sha256">11</checksum><location href="repodata/f.xml.gz"/></data>
<data type="primary"><checksum type="sha256">{}</checksum><open-checksum type="sha256">99</open-checksum><location href="repodata/p.xml.zst"/></data></repomd>"#
            .replace("{}", &"AB".repeat(32));
        assert_eq!(
            primary_location(repomd.as_bytes()).unwrap(),
            ("repodata/p.xml.zst".to_string(), "ab".repeat(32))
        );
    }

    #[test]
    fn deep_nesting_and_endless_tokens_are_errors() {
        let deep = "<a>".repeat(MAX_DEPTH + 1);
        assert!(candidates(deep.as_bytes(), &[], "x")
            .unwrap_err()
            .contains("deeper"));
        let long = format!("<a>{}</a>", "x".repeat(MAX_TOKEN + 1));
        assert!(candidates(long.as_bytes(), &[], "x")
            .unwrap_err()
            .contains("longer"));
    }
}
