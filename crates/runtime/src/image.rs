//! Opening an image for the engine and choosing what boots: its
//! architecture (asked of the image or given), the boot entry, and where
//! its kernel's modules are.

use crate::Error;
use bootproof_boot::chain::{self, BootChain, BootEntry};
use bootproof_boot::extract::entry_from_boot_dir;
use bootproof_boot::modules::{self, Closure, InImage};
use bootproof_image::ReadAt;
use bootproof_inspect::OpenedImage;
use bootproof_platform::Arch;
use bootproof_vm::prepare::BackingDisk;
use std::path::Path;

/// Opens an image read-only; `allow_backing` follows qcow2 backing files
/// (and VMDK extents outside the descriptor's directory). Compressed
/// images are unpacked once into the cache (`unpacked/`).
pub fn open(path: &Path, allow_backing: bool) -> Result<OpenedImage, Error> {
    let opts = bootproof_image::OpenOptions {
        allow_backing,
        unpack_dir: Some(crate::host::cache_dir().join("unpacked")),
    };
    Ok(OpenedImage::open(path, &opts)?)
}

/// The disk QEMU reads under a VM's overlay: the image file, or the
/// archive (or unpacked copy) holding it and the member's byte range.
pub fn backing_disk(image: &bootproof_image::Image) -> BackingDisk {
    let (path, window) = image.host_file();
    BackingDisk {
        path: path.to_path_buf(),
        format: image.format().to_string(),
        size: image.size(),
        window,
    }
}

/// The guest architecture: the one given, else the image's own (removable
/// path, root partition type).
pub fn resolve_arch(img: &OpenedImage, given: Option<Arch>) -> Result<Arch, Error> {
    match given {
        Some(a) => Ok(a),
        None => chain::detect_arch(img).ok_or_else(|| {
            Error::with_hint(
                "cannot tell the image's architecture (no removable loader, no typed root partition)",
                "pass --arch aarch64 or --arch x86_64",
            )
        }),
    }
}

/// Parses `auto` (None) or an architecture name.
pub fn parse_arch_choice(s: &str) -> Result<Option<Arch>, Error> {
    match s {
        "auto" => Ok(None),
        a => Ok(Some(a.parse()?)),
    }
}

/// An entry chosen to boot: the chain it came from, the entry, and
/// whether it stands in for a missing chain (the newest kernel in /boot).
pub struct Picked {
    /// The boot chain followed.
    pub chain: BootChain,
    /// The entry chosen.
    pub entry: BootEntry,
    /// No chain had entries: the newest kernel in /boot stands in.
    pub fallback: bool,
}

/// Follows the boot chain and picks entry `entry` (or the default). Without
/// a chain, the newest kernel in /boot stands in (`fallback` says so).
pub fn pick_entry(img: &OpenedImage, arch: Arch, entry: Option<usize>) -> Result<Picked, Error> {
    let mut chain = chain::follow(img, arch);
    let mut fallback = false;
    if chain.entries.is_empty() {
        if let Some(e) = entry_from_boot_dir(img) {
            chain.entries.push(e);
            fallback = true;
        }
    }
    let picked = match entry {
        Some(n) => chain.entries.get(n).ok_or_else(|| {
            Error::with_hint(
                format!("entry {n} does not exist ({} entries)", chain.entries.len()),
                "`bootproof extract --json IMAGE -o DIR` lists the entries",
            )
        })?,
        None => chain.default_entry().ok_or_else(|| {
            let why: Vec<String> = chain.problems.iter().map(|p| p.message.clone()).collect();
            Error::with_hint(
                format!("no boot entry found: {}", why.join("; ")),
                "`bootproof inspect IMAGE` shows what the image holds",
            )
        })?,
    }
    .clone();
    Ok(Picked {
        chain,
        entry: picked,
        fallback,
    })
}

/// The image's `/lib/modules/<version>` (or `/usr/lib/...`): the slot
/// index and path.
pub fn module_dir(img: &OpenedImage, version: &str) -> Option<(usize, String)> {
    for (i, s) in img.slots.iter().enumerate() {
        let Some(v) = s.volume.as_ref() else { continue };
        for base in ["/lib/modules", "/usr/lib/modules"] {
            let dir = format!("{base}/{version}");
            if v.metadata(dir.as_bytes())
                .is_ok_and(|m| m.file_type == bootproof_fs::FileType::Dir)
            {
                return Some((i, dir));
            }
        }
    }
    None
}

/// The closure of `wanted` from the image's own module tree for kernel
/// `version`; when the tree is not in the image, every wanted module is
/// missing and `why_none` says why.
pub fn image_closure(img: &OpenedImage, version: &str, wanted: &[&str], why_none: &str) -> Closure {
    match module_dir(img, version) {
        Some((slot, dir)) => {
            let vol = img.slots[slot]
                .volume
                .as_ref()
                .expect("module_dir found a volume");
            modules::resolve(&InImage { volume: vol, dir }, wanted)
        }
        None => no_modules(wanted, why_none),
    }
}

/// The closure when there is no module tree to resolve from: every wanted
/// module missing, and why.
pub fn no_modules(wanted: &[&str], why: &str) -> Closure {
    Closure {
        missing: wanted.iter().map(|s| s.to_string()).collect(),
        dependency_source: format!("none: {why}"),
        ..Closure::default()
    }
}
