//! Debian and Ubuntu archives: a `Packages` index read as a stream (only
//! `linux-*` stanzas kept, every line, stanza count and hop bounded), a
//! metapackage followed through `Depends` to its `linux-image-<release>`,
//! and the `linux-modules*-<release>` packages that complete it.

use super::IndexedPackage;
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read};

/// Largest index read, decompressed (Debian's arm64 main is ~50 MB).
pub(super) const MAX_INDEX: u64 = 1 << 30;
/// Longest index line kept whole (a long `Depends` is ~2 KiB).
const MAX_LINE: usize = 64 << 10;
/// Most `linux-*` stanzas kept from one index.
const MAX_STANZAS: usize = 200_000;
/// Most `Depends` hops from a metapackage to its kernel.
const MAX_HOPS: usize = 8;

/// The fields of one index stanza bootproof uses.
#[derive(Debug, Default, Clone)]
struct Stanza {
    version: String,
    filename: String,
    sha256: String,
    depends: String,
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
}
