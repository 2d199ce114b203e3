//! Kernel modules of an installed kernel (`/lib/modules/<version>/`): which
//! are built in, where each module file is, and the dependency closure of a
//! set of modules in load order — from `modules.dep` when `depmod` wrote
//! one, else from each module's own `.modinfo` `depends=` (what depmod
//! reads), since a kernel unpacked from its package has no `modules.dep`.

use crate::decompress::{decompress, Compression};
use object::{Object, ObjectSection};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};

/// Largest module file read.
const MAX_MODULE: u64 = 64 << 20;
/// Largest `modules.dep` / `modules.builtin` read.
const MAX_INDEX: u64 = 4 << 20;
/// Most modules in one closure.
const MAX_CLOSURE: usize = 512;
/// Most module bytes one closure holds (a real agent closure is under
/// 2 MiB; a crafted `modules.dep` could otherwise chain 512 files of up to
/// 64 MiB each into memory).
pub const MAX_CLOSURE_BYTES: u64 = 256 << 20;
/// Most directory entries looked at when walking for module files.
const MAX_ENTRIES: usize = 20_000;

/// Where module files come from: an image's filesystem or a host directory.
/// Paths are relative to `/lib/modules/<version>/`.
pub trait ModuleSource {
    /// A file's bytes (at most `limit`), or `None` if absent or unreadable.
    fn read(&self, rel: &str, limit: u64) -> Option<Vec<u8>>;
    /// A directory's entries as (name, is_directory), or `None`.
    fn list(&self, rel: &str) -> Option<Vec<(String, bool)>>;
}

/// A module's canonical name: `-` and `_` are the same to the kernel.
pub fn canonical(name: &str) -> String {
    name.replace('-', "_")
}

/// The module name of a file name (`virtio_blk.ko.xz` → `virtio_blk`).
pub fn name_of(file: &str) -> Option<String> {
    let base = file.rsplit('/').next()?;
    let stem = base.split(".ko").next()?;
    (base.len() > stem.len() && base[stem.len()..].starts_with(".ko")).then(|| canonical(stem))
}

/// One module to load.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct ModuleFile {
    /// Canonical name.
    pub name: String,
    /// Path relative to `/lib/modules/<version>/`.
    pub path: String,
    /// The module, decompressed (the kernel's `finit_module` may not
    /// decompress by itself).
    #[serde(skip)]
    pub data: Vec<u8>,
}

/// The result of resolving a set of wanted modules.
#[derive(Debug, Clone, Default, Serialize, schemars::JsonSchema)]
pub struct Closure {
    /// Files to load, each after its dependencies.
    pub load: Vec<ModuleFile>,
    /// Wanted modules built into the kernel (nothing to load).
    pub builtin: Vec<String>,
    /// Wanted modules (or dependencies) found nowhere.
    pub missing: Vec<String>,
    /// Where dependencies came from: `modules.dep` or `modinfo`.
    pub dependency_source: String,
    /// Dependency cycles met (`a -> b -> a`), each broken by loading the
    /// module whose dependency closed it first. Real kernels have none; a
    /// crafted `modules.dep` or `.modinfo` can.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub cycles: Vec<String>,
    /// Modules left out (and also listed in `missing`) because holding
    /// them would take the closure past [`MAX_CLOSURE_BYTES`].
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub too_large: Vec<String>,
}

/// The modules built into the kernel (`modules.builtin`), or `None` when
/// the file is absent.
pub fn builtin(src: &dyn ModuleSource) -> Option<BTreeSet<String>> {
    src.read("modules.builtin", MAX_INDEX).map(|b| {
        String::from_utf8_lossy(&b)
            .lines()
            .filter_map(name_of)
            .collect()
    })
}

/// Parses `modules.dep`: `kernel/a/b.ko: kernel/c.ko kernel/d.ko`.
fn parse_dep(text: &str) -> BTreeMap<String, (String, Vec<String>)> {
    let mut map = BTreeMap::new();
    for line in text.lines() {
        let Some((path, deps)) = line.split_once(':') else {
            continue;
        };
        if let Some(name) = name_of(path) {
            let deps = deps.split_whitespace().filter_map(name_of).collect();
            map.insert(name, (path.trim().to_string(), deps));
        }
    }
    map
}

/// Every module file under `kernel/`, by name, found by listing
/// directories only (no file is read).
pub fn index(src: &dyn ModuleSource) -> BTreeMap<String, String> {
    let mut found = BTreeMap::new();
    let mut queue = vec!["kernel".to_string()];
    let mut budget = MAX_ENTRIES;
    while let Some(dir) = queue.pop() {
        for (name, is_dir) in src.list(&dir).unwrap_or_default() {
            if budget == 0 {
                return found;
            }
            budget -= 1;
            let rel = format!("{dir}/{name}");
            if is_dir {
                queue.push(rel);
            } else if let Some(m) = name_of(&name) {
                found.entry(m).or_insert(rel);
            }
        }
    }
    found
}

/// A module file's bytes, decompressed by their magic: `.ko.xz`
/// (Debian), `.ko.zst` (Ubuntu 23.10 on, Fedora), `.ko.gz`; anything else
/// as it is. (By magic, not extension: the extensions are not the
/// compressors' names, and Ubuntu's `.ko.zst` once went in compressed.)
fn module_bytes(src: &dyn ModuleSource, path: &str) -> Option<Vec<u8>> {
    let raw = src.read(path, MAX_MODULE)?;
    match Compression::detect(&raw) {
        Some(c) if !raw.starts_with(b"\x7fELF") => decompress(c, &raw, MAX_MODULE).ok(),
        _ => Some(raw), // ELF, or bytes the kernel will name as not ELF.
    }
}

/// `depends=` from a module's `.modinfo` section.
pub fn modinfo_depends(module: &[u8]) -> Vec<String> {
    let Ok(file) = object::File::parse(module) else {
        return Vec::new();
    };
    let Some(data) = file.section_by_name(".modinfo").and_then(|s| s.data().ok()) else {
        return Vec::new();
    };
    data.split(|&b| b == 0)
        .filter_map(|kv| kv.strip_prefix(b"depends="))
        .flat_map(|v| {
            String::from_utf8_lossy(v)
                .split(',')
                .filter(|s| !s.is_empty())
                .map(canonical)
                .collect::<Vec<_>>()
        })
        .collect()
}

/// Resolves `wanted` (module names) to the files to load, dependencies
/// first. Missing or built-in modules are reported, not errors: the caller
/// decides what a missing module means.
pub fn resolve(src: &dyn ModuleSource, wanted: &[&str]) -> Closure {
    let builtin = builtin(src).unwrap_or_default();
    let dep = src
        .read("modules.dep", MAX_INDEX)
        .map(|b| parse_dep(&String::from_utf8_lossy(&b)));
    let mut closure = Closure {
        dependency_source: if dep.is_some() {
            "modules.dep"
        } else {
            "modinfo"
        }
        .into(),
        ..Closure::default()
    };
    let paths: BTreeMap<String, String> = match &dep {
        Some(d) => d.iter().map(|(k, (p, _))| (k.clone(), p.clone())).collect(),
        None => index(src),
    };
    let mut done = BTreeSet::new();
    let mut held: u64 = 0;
    // Iterative post-order DFS: (name, dependencies pushed yet?).
    for w in wanted {
        let w = canonical(w);
        if builtin.contains(&w) {
            closure.builtin.push(w);
            continue;
        }
        let mut stack = vec![(w, false)];
        let mut loaded: BTreeMap<String, Vec<u8>> = BTreeMap::new();
        // Modules whose dependencies are being resolved: meeting one again
        // before it is done is a cycle (without this, `a: b`, `b: a` looped
        // forever).
        let mut open: BTreeSet<String> = BTreeSet::new();
        while let Some((name, expanded)) = stack.pop() {
            if done.contains(&name) || closure.load.len() >= MAX_CLOSURE {
                continue;
            }
            if !expanded && open.contains(&name) {
                if closure.cycles.len() < MAX_CLOSURE {
                    closure.cycles.push(name);
                }
                continue;
            }
            let Some(path) = paths.get(&name) else {
                if !builtin.contains(&name) && !closure.missing.contains(&name) {
                    closure.missing.push(name);
                }
                continue;
            };
            if expanded {
                done.insert(name.clone());
                let data = loaded.remove(&name).unwrap_or_default();
                closure.load.push(ModuleFile {
                    name,
                    path: path.clone(),
                    data,
                });
                continue;
            }
            let Some(data) = module_bytes(src, path) else {
                closure.missing.push(name);
                continue;
            };
            held = held.saturating_add(data.len() as u64);
            if held > MAX_CLOSURE_BYTES {
                held -= data.len() as u64;
                closure.too_large.push(name.clone());
                closure.missing.push(name);
                continue;
            }
            let deps = match &dep {
                Some(d) => d.get(&name).map(|(_, v)| v.clone()).unwrap_or_default(),
                None => modinfo_depends(&data),
            };
            loaded.insert(name.clone(), data);
            open.insert(name.clone());
            stack.push((name, true));
            for d in deps.into_iter().rev() {
                if !done.contains(&d) && !builtin.contains(&d) {
                    stack.push((d, false));
                }
            }
        }
    }
    closure
}

/// A host directory (`/lib/modules/<version>` unpacked from a package).
pub struct HostDir(pub std::path::PathBuf);

impl ModuleSource for HostDir {
    fn read(&self, rel: &str, limit: u64) -> Option<Vec<u8>> {
        use std::io::Read;
        let mut out = Vec::new();
        std::fs::File::open(self.0.join(rel))
            .ok()?
            .take(limit)
            .read_to_end(&mut out)
            .ok()?;
        Some(out)
    }
    fn list(&self, rel: &str) -> Option<Vec<(String, bool)>> {
        let rd = std::fs::read_dir(self.0.join(rel)).ok()?;
        Some(
            rd.flatten()
                .filter_map(|e| {
                    let t = e.file_type().ok()?;
                    Some((e.file_name().to_string_lossy().into_owned(), t.is_dir()))
                })
                .collect(),
        )
    }
}

/// A kernel's module directory inside an image's filesystem.
pub struct InImage<'a> {
    /// The root filesystem.
    pub volume: &'a bootproof_fs::Volume,
    /// `/lib/modules/<version>` (or `/usr/lib/modules/<version>`).
    pub dir: String,
}

impl ModuleSource for InImage<'_> {
    fn read(&self, rel: &str, limit: u64) -> Option<Vec<u8>> {
        let path = format!("{}/{rel}", self.dir);
        let size = self.volume.metadata(path.as_bytes()).ok()?.size;
        if size > limit {
            return None;
        }
        self.volume.read_limited(path.as_bytes(), limit).ok()
    }
    fn list(&self, rel: &str) -> Option<Vec<(String, bool)>> {
        let path = format!("{}/{rel}", self.dir);
        let entries = self.volume.read_dir(path.as_bytes()).ok()?;
        Some(
            entries
                .into_iter()
                .filter(|e| e.name != b"." && e.name != b"..")
                .map(|e| {
                    (
                        String::from_utf8_lossy(&e.name).into_owned(),
                        e.file_type == bootproof_fs::FileType::Dir,
                    )
                })
                .collect(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Modules in memory: path → bytes.
    struct Mem(BTreeMap<String, Vec<u8>>);

    impl ModuleSource for Mem {
        fn read(&self, rel: &str, _limit: u64) -> Option<Vec<u8>> {
            self.0.get(rel).cloned()
        }
        fn list(&self, _dir: &str) -> Option<Vec<(String, bool)>> {
            Some(self.0.keys().map(|k| (k.clone(), false)).collect())
        }
    }

    #[test]
    fn a_dependency_cycle_ends_and_is_reported() {
        let mut files = BTreeMap::new();
        files.insert(
            "modules.dep".to_string(),
            b"kernel/a.ko: kernel/b.ko\nkernel/b.ko: kernel/c.ko\nkernel/c.ko: kernel/a.ko\n"
                .to_vec(),
        );
        for m in ["a", "b", "c"] {
            files.insert(format!("kernel/{m}.ko"), b"\x7fELF".to_vec());
        }
        let c = resolve(&Mem(files), &["a"]);
        let names: Vec<&str> = c.load.iter().map(|m| m.name.as_str()).collect();
        assert_eq!(names, ["c", "b", "a"], "each once, dependencies first");
        assert_eq!(c.cycles, ["a"]);
        assert!(c.missing.is_empty());
    }

    /// A chain of large modules stops at the byte budget: the ones past it
    /// are named, never held.
    #[test]
    fn a_closure_holds_at_most_its_byte_budget() {
        let mut files = BTreeMap::new();
        let n = (MAX_CLOSURE_BYTES / (32 << 20)) as usize + 3;
        let mut dep = String::new();
        for i in 0..n {
            dep.push_str(&format!("kernel/m{i}.ko: kernel/m{}.ko\n", i + 1));
            files.insert(format!("kernel/m{i}.ko"), vec![0u8; 32 << 20]);
        }
        files.insert("modules.dep".to_string(), dep.into_bytes());
        let c = resolve(&Mem(files), &["m0"]);
        let held: usize = c.load.iter().map(|m| m.data.len()).sum();
        assert!(held as u64 <= MAX_CLOSURE_BYTES, "{held}");
        assert!(!c.too_large.is_empty());
        assert!(c.too_large.iter().all(|m| c.missing.contains(m)));
    }

    #[test]
    fn names_and_dep_lines() {
        assert_eq!(
            name_of("kernel/drivers/block/virtio_blk.ko.xz").as_deref(),
            Some("virtio_blk")
        );
        assert_eq!(name_of("crc-t10dif.ko").as_deref(), Some("crc_t10dif"));
        assert_eq!(name_of("README"), None);
        let d = parse_dep("kernel/a.ko: kernel/b.ko kernel/c-d.ko.zst\nkernel/b.ko:\n");
        // Each compression a distribution uses reads back as the ELF.
        let elf = b"\x7fELF-module".to_vec();
        for (ext, tool) in [
            ("xz", &["xz", "-c"][..]),
            ("zst", &["zstd", "-c"]),
            ("gz", &["gzip", "-c"]),
        ] {
            let mut files = BTreeMap::new();
            files.insert(format!("m.ko.{ext}"), bootproof_testkit::pipe(tool, &elf));
            let got = module_bytes(&Mem(files), &format!("m.ko.{ext}"));
            assert_eq!(got.as_deref(), Some(&elf[..]), "{ext}");
        }
        assert_eq!(d["a"].1, ["b", "c_d"]);
        assert_eq!(d["b"].0, "kernel/b.ko");
    }
}
