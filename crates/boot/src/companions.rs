//! Kernels split across packages: Fedora and the RHEL family ship the
//! kernel in `kernel-core` and most modules in `kernel-modules-core` and
//! `kernel-modules`; Ubuntu ships `linux-image-<release>` beside
//! `linux-modules-<release>` and `linux-modules-extra-<release>`. A
//! package that holds only `lib/modules/<release>/…` is a *companion* of
//! the kernel package of that release: each package is unpacked into the
//! kernel cache as usual, and their union (hard links into one more cache
//! entry, named by the packages' digests) is the tree the kernel boots
//! with, so the agent's module closure sees every module.

use crate::package::{self, ExternalKernel, Origin, PackageError};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

/// Module directories a package tree can hold.
const MODULE_ROOTS: [&str; 2] = ["lib/modules", "usr/lib/modules"];

/// What an unpacked package holds, for grouping `--kernel` packages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Content {
    /// A kernel (maybe with modules): it boots.
    Kernel,
    /// Only modules, all for this release: a companion.
    Modules(String),
}

/// Whether the package at `path` holds a kernel or only the modules of one
/// release (unpacking it into `cache` once, as [`package::open`] would).
/// `None` when `path` is not a package (a directory or a kernel file).
pub fn content(path: &Path, cache: &Path) -> Result<Option<Content>, PackageError> {
    if !package::is_package(path)? {
        return Ok(None);
    }
    let tree = package::unpack_cached(path, cache)?;
    if package::has_kernel(&tree) {
        return Ok(Some(Content::Kernel));
    }
    let releases = releases(&tree);
    match releases.as_slice() {
        [one] => Ok(Some(Content::Modules(one.clone()))),
        [] => Err(PackageError::Unsupported(format!(
            "{}: neither a kernel nor modules (no boot/vmlinuz-<release> or lib/modules/<release>/)",
            path.display()
        ))),
        more => Err(PackageError::Unsupported(format!(
            "{}: modules for {} releases ({}); a companion package holds one release's",
            path.display(),
            more.len(),
            more.join(", ")
        ))),
    }
}

/// The kernel package at `path` with the modules of `companions` (packages
/// holding only modules of the kernel's release) merged into its module
/// tree. Without companions this is [`package::open`].
pub fn open_with(
    path: &Path,
    modules: Option<&Path>,
    companions: &[PathBuf],
    cache: &Path,
) -> Result<ExternalKernel, PackageError> {
    if companions.is_empty() {
        return package::open(path, modules, cache);
    }
    if !package::is_package(path)? {
        return Err(PackageError::Unsupported(format!(
            "{}: module packages join a kernel package (.deb or .rpm), not a directory or kernel file",
            path.display()
        )));
    }
    let mut trees = vec![package::unpack_cached(path, cache)?];
    for c in companions {
        if content(c, cache)?.is_none_or(|c| c == Content::Kernel) {
            return Err(PackageError::Unsupported(format!(
                "{}: not a modules-only package, so not a companion of {}",
                c.display(),
                path.display()
            )));
        }
        trees.push(package::unpack_cached(c, cache)?);
    }
    let merged = merged_tree(&trees, cache)?;
    let mut k = package::open(&merged, modules, cache)?;
    k.origin = Origin::Package;
    for (c, tree) in companions.iter().zip(&trees[1..]) {
        let r = releases(tree);
        if r != [k.version.as_str()] {
            return Err(PackageError::Unsupported(format!(
                "{}: modules for {}, but {} is release {}",
                c.display(),
                r.join(", "),
                path.display(),
                k.version
            )));
        }
    }
    Ok(k)
}

/// The releases under a tree's module directories.
fn releases(tree: &Path) -> Vec<String> {
    let mut out: Vec<String> = MODULE_ROOTS
        .iter()
        .filter_map(|m| std::fs::read_dir(tree.join(m)).ok())
        .flat_map(|rd| rd.flatten())
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    out.sort();
    out.dedup();
    out
}

/// The union of unpacked package trees (cache entries, so every entry in
/// them is a plain directory or file) as one more cache entry, named by
/// their digests; made once, beside its final name, then renamed. Where
/// two trees hold the same path, the first (the kernel package) wins.
fn merged_tree(trees: &[PathBuf], cache: &Path) -> Result<PathBuf, PackageError> {
    let mut h = Sha256::new();
    for t in trees {
        h.update(t.file_name().unwrap_or_default().as_encoded_bytes());
        h.update([0]);
    }
    let parent = cache.join("kernels");
    let dest = parent.join(format!("merged-{}", crate::extract::hex(h.finalize())));
    if dest.is_dir() {
        return Ok(dest);
    }
    let tmp = parent.join(format!(".merged.{}.part", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    let result = trees.iter().try_for_each(|t| link_tree(t, &tmp));
    if let Err(e) = result.and_then(|()| {
        std::fs::rename(&tmp, &dest).or_else(|e| if dest.is_dir() { Ok(()) } else { Err(e) })
    }) {
        let _ = std::fs::remove_dir_all(&tmp);
        return Err(PackageError::Io {
            path: dest,
            source: e,
        });
    }
    let _ = std::fs::remove_dir_all(&tmp);
    Ok(dest)
}

/// Hard-links (copies where linking fails) every file under `from` into
/// the same place under `to`, iteratively; files already there are kept.
fn link_tree(from: &Path, to: &Path) -> std::io::Result<()> {
    let mut todo = vec![PathBuf::new()];
    while let Some(rel) = todo.pop() {
        std::fs::create_dir_all(to.join(&rel))?;
        for e in std::fs::read_dir(from.join(&rel))? {
            let e = e?;
            let r = rel.join(e.file_name());
            let t = e.file_type()?;
            if t.is_dir() {
                todo.push(r);
            } else if t.is_file() && !to.join(&r).exists() {
                std::fs::hard_link(e.path(), to.join(&r))
                    .or_else(|_| std::fs::copy(e.path(), to.join(&r)).map(|_| ()))?;
            }
        }
    }
    Ok(())
}
