//! The Boot Loader Specification's world: BLS type #1 entries
//! (`loader/entries/*.conf`), systemd-boot's `loader.conf` and its
//! `default` glob, and Unified Kernel Images (type #2 entries in
//! `/EFI/Linux`).

use super::*;
use crate::grub;

/// Longest `default` pattern matched; a longer one (no real loader.conf
/// has one) matches nothing, so matching stays bounded.
const MAX_GLOB: usize = 1024;

/// systemd-boot's `default` glob (`*` any run, `?` one byte). Iterative,
/// remembering only the last `*`: O(len(pattern) × len(s)) at worst, no
/// recursion (a pattern like `*a*a*a…b` from a hostile loader.conf was
/// exponential and overflowed the stack when matched recursively).
pub(super) fn glob(pattern: &str, s: &str) -> bool {
    if pattern.len() > MAX_GLOB {
        return false;
    }
    let (p, s) = (pattern.as_bytes(), s.as_bytes());
    let (mut pi, mut si) = (0, 0);
    // Where the last `*` was, and the input position it matched up to.
    let mut star: Option<(usize, usize)> = None;
    while si < s.len() {
        match p.get(pi) {
            Some(b'*') => {
                star = Some((pi, si));
                pi += 1;
            }
            Some(&c) if c == b'?' || c == s[si] => {
                pi += 1;
                si += 1;
            }
            _ => match star {
                // Let the last `*` take one more byte and retry after it.
                Some((sp, ss)) => {
                    pi = sp + 1;
                    si = ss + 1;
                    star = Some((sp, ss + 1));
                }
                None => return false,
            },
        }
    }
    p[pi..].iter().all(|&c| c == b'*')
}

/// A Boot Loader Specification type #1 entry file.
pub(super) fn bls_entry(
    text: &str,
    slot: u32,
    source: String,
    vars: &dyn Fn(&str) -> Option<String>,
    chain: &mut BootChain,
) -> Option<BootEntry> {
    let mut title = None;
    let mut version = None;
    let mut linux = None;
    let mut initrds = Vec::new();
    let mut options = Vec::new();
    let mut efi = None;
    for line in text.lines() {
        let line = line.trim();
        let Some((k, v)) = line.split_once(|c: char| c.is_whitespace()) else {
            continue;
        };
        let v = v.trim().to_string();
        match k {
            "title" => title = Some(v),
            "version" => version = Some(v),
            "linux" => linux = Some(v),
            "initrd" => initrds.extend(v.split_whitespace().map(str::to_string)),
            "options" => options.push(v),
            "efi" => efi = Some(v),
            _ => {}
        }
    }
    let mut cmdline = options.join(" ");
    // GRUB's blscfg expands variables such as $kernelopts from grubenv.
    if cmdline.contains('$') {
        let expanded = grub::expand(&cmdline, &|n| vars(n).or_else(|| Some(format!("${n}"))));
        for word in expanded.split_whitespace().filter(|w| w.starts_with('$')) {
            chain.problem("chain.unresolved-variable", format!("{source}: `{word}` is not defined (grubenv lacks it); the kernel would get it literally"));
        }
        cmdline = expanded;
    }
    let (kernel, uki) = match (linux, efi) {
        (Some(l), _) => (l, false),
        (None, Some(e)) => (e, true),
        (None, None) => {
            chain.problem(
                "chain.entry-without-kernel",
                format!("{source} names no `linux` or `efi`"),
            );
            return None;
        }
    };
    let at = |p: &str| FileRef {
        slot,
        path: if p.starts_with('/') {
            p.to_string()
        } else {
            format!("/{p}")
        },
    };
    Some(BootEntry {
        title: title.unwrap_or_else(|| source.clone()),
        source,
        kernel: at(&kernel),
        initrds: initrds.iter().map(|i| at(i)).collect(),
        cmdline,
        default: false,
        uki,
        version,
    })
}

/// Loads every BLS entry in `dir` on `slot`.
pub(super) fn bls_dir(
    img: &OpenedImage,
    slot: u32,
    dir: &str,
    vars: &dyn Fn(&str) -> Option<String>,
    chain: &mut BootChain,
) -> Vec<(String, BootEntry)> {
    let mut out = Vec::new();
    for name in img.list_names(slot, dir) {
        if !name.ends_with(".conf") {
            continue;
        }
        let f = FileRef {
            slot,
            path: format!("{dir}/{name}"),
        };
        if let Some(text) = img.read_text(&f, MAX_CONFIG) {
            if let Some(e) = bls_entry(&text, slot, f.to_string(), vars, chain) {
                out.push((name.trim_end_matches(".conf").to_string(), e));
            }
        }
    }
    // Newest version first, then by id: the order systemd-boot and blscfg show.
    out.sort_by(|a, b| {
        let v = |e: &BootEntry| e.version.clone().unwrap_or_default();
        version_cmp(&v(&b.1), &v(&a.1)).then_with(|| b.0.cmp(&a.0))
    });
    out
}

pub(super) fn uki_entry(img: &OpenedImage, f: &FileRef, default: bool) -> Option<BootEntry> {
    let data = vol(img, f.slot)?
        .read_limited(f.path.as_bytes(), MAX_EFI)
        .ok()?;
    let text = |s: &str| {
        PeInfo::section_data(&data, s).map(|b| {
            String::from_utf8_lossy(b)
                .trim_end_matches('\0')
                .trim()
                .to_string()
        })
    };
    let osrel = text(".osrel").unwrap_or_default();
    let title = osrel
        .lines()
        .find_map(|l| l.strip_prefix("PRETTY_NAME="))
        .map(|t| t.trim_matches('"').to_string())
        .unwrap_or_else(|| f.path.clone());
    Some(BootEntry {
        title,
        source: f.to_string(),
        kernel: f.clone(),
        initrds: Vec::new(),
        cmdline: text(".cmdline").unwrap_or_default(),
        default,
        uki: true,
        version: text(".uname"),
    })
}

pub(super) fn systemd_boot(img: &OpenedImage, esp: u32, chain: &mut BootChain) {
    let conf = img
        .read_text(&FileRef::new(esp, "/loader/loader.conf"), MAX_CONFIG)
        .unwrap_or_default();
    let default_pattern = conf
        .lines()
        .find_map(|l| {
            l.trim()
                .strip_prefix("default")
                .map(|v| v.trim().to_string())
        })
        .filter(|v| !v.is_empty());
    // systemd-boot boots the default at once unless `timeout` says
    // otherwise; only `menu-force` shows the menu with no timeout.
    let timeout = conf.lines().find_map(|l| {
        l.trim()
            .strip_prefix("timeout")
            .filter(|v| v.starts_with(char::is_whitespace))
            .map(|v| v.trim().to_string())
    });
    chain.menu_timeout = Some(MenuTimeout {
        waits_for_key: timeout.as_deref() == Some("menu-force"),
        value: timeout.unwrap_or_else(|| "unset".into()),
        source: format!("{esp}:/loader/loader.conf"),
    });
    let mut all = Vec::new();
    let mut places = vec![esp];
    places.extend(
        img.slots
            .iter()
            .filter(|s| {
                s.partition
                    .as_ref()
                    .and_then(|p| p.type_guid)
                    .is_some_and(|g| g.to_string() == XBOOTLDR)
            })
            .map(|s| s.number),
    );
    let no_vars = |_: &str| None;
    for &slot in &places {
        all.extend(bls_dir(img, slot, "/loader/entries", &no_vars, chain));
        for name in img.list_names(slot, "/EFI/Linux") {
            if name.to_ascii_lowercase().ends_with(".efi") {
                let f = FileRef {
                    slot,
                    path: format!("/EFI/Linux/{name}"),
                };
                if let Some(e) = uki_entry(img, &f, false) {
                    all.push((name.trim_end_matches(".efi").to_string(), e));
                }
            }
        }
    }
    chain.steps.push(format!(
        "systemd-boot reads {esp}:/loader/loader.conf and {} entr{}",
        all.len(),
        if all.len() == 1 { "y" } else { "ies" }
    ));
    let pick = default_pattern.as_ref().and_then(|p| {
        all.iter().position(|(id, _)| {
            glob(p.trim_end_matches(".conf"), id) || glob(p, &format!("{id}.conf"))
        })
    });
    let pick = pick.unwrap_or(0);
    for (i, (_, mut e)) in all.into_iter().enumerate() {
        e.default = i == pick;
        chain.entries.push(e);
    }
}

#[cfg(test)]
mod tests {
    use super::glob;

    #[test]
    fn glob_matches_like_systemd_boot() {
        for (p, s, want) in [
            ("*", "", true),
            ("*", "debian.conf", true),
            ("debian-*", "debian-6.1.conf", true),
            ("debian-*", "fedora.conf", false),
            ("?ebian*", "debian", true),
            ("*.conf", "a.conf.bak", false),
            ("a*b*c", "aXbYc", true),
            ("a*b*c", "aXbY", false),
            ("", "", true),
            ("", "x", false),
            ("**", "x", true),
        ] {
            assert_eq!(glob(p, s), want, "{p:?} vs {s:?}");
        }
    }

    #[test]
    fn hostile_patterns_end_quickly_without_recursion() {
        // 2^n paths for a recursive matcher; a 100 000-star pattern
        // overflowed its stack.
        let p = format!("{}b", "*a".repeat(500));
        let s = "a".repeat(4096);
        assert!(!glob(&p, &s));
        assert!(glob(&"*".repeat(1000), "anything"));
        // Longer than any real pattern: matches nothing, costs nothing.
        assert!(!glob(&"*".repeat(100_000), "anything"));
    }
}
