//! Firmware selection from QEMU firmware descriptors
//! (`docs/interop/firmware.json` in QEMU).
//!
//! Descriptors are read from `/usr/share/qemu/firmware`, then
//! `/etc/qemu/firmware`, then `$XDG_CONFIG_HOME/qemu/firmware`; files are
//! ordered by name; a file in a later directory replaces the same-named
//! file from an earlier one, and an empty file hides it. The first
//! descriptor (in name order) that fits wins; when none fits, every
//! candidate is listed with the reason it was rejected.

use bootproof_platform::Arch;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// A file named by a descriptor, with its format.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq, schemars::JsonSchema)]
pub struct FlashFile {
    /// Absolute path.
    pub filename: PathBuf,
    /// `raw` or `qcow2`.
    #[serde(default = "raw")]
    pub format: String,
}

fn raw() -> String {
    "raw".into()
}

/// How the firmware is mapped into the guest.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq, schemars::JsonSchema)]
#[serde(tag = "device", rename_all = "kebab-case")]
pub enum Mapping {
    /// Pflash: code (read-only) and, in `split` mode, a variable-store template.
    Flash {
        /// `split` (default), `combined` or `stateless`.
        #[serde(default)]
        mode: Option<String>,
        /// The code image.
        executable: FlashFile,
        /// Template for the per-VM variable store.
        #[serde(rename = "nvram-template", default)]
        nvram_template: Option<FlashFile>,
    },
    /// Loaded into memory (`-bios`).
    Memory {
        /// The image.
        filename: PathBuf,
    },
    /// Loaded as a kernel (`-kernel`).
    Kernel {
        /// The image.
        filename: PathBuf,
    },
}

/// One `targets` element.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq, schemars::JsonSchema)]
pub struct Target {
    /// QEMU architecture name (`aarch64`, `x86_64`).
    pub architecture: String,
    /// Machine type globs (`virt-*`, `pc-q35-*`).
    pub machines: Vec<String>,
}

/// A parsed descriptor.
#[derive(Debug, Clone, Deserialize, Serialize, schemars::JsonSchema)]
pub struct Descriptor {
    /// Free text.
    #[serde(default)]
    pub description: String,
    /// `uefi`, `bios`, …
    #[serde(rename = "interface-types")]
    pub interface_types: Vec<String>,
    /// How it is mapped.
    pub mapping: Mapping,
    /// What it runs on.
    pub targets: Vec<Target>,
    /// `secure-boot`, `enrolled-keys`, `requires-smm`, `acpi-s3`, …
    #[serde(default)]
    pub features: Vec<String>,
    /// The file it came from (set when loading).
    #[serde(skip_deserializing)]
    pub source: PathBuf,
}

impl Descriptor {
    /// Its target for `arch` (QEMU's architecture names read by the
    /// platform vocabulary), if it has one.
    pub fn target_for(&self, arch: Arch) -> Option<&Target> {
        self.targets
            .iter()
            .find(|t| Arch::parse(&t.architecture) == Some(arch))
    }

    /// Whether it declares `feature` (`secure-boot`, `enrolled-keys`, …).
    pub fn has_feature(&self, feature: &str) -> bool {
        self.features.iter().any(|f| f == feature)
    }
}

/// What the VM needs.
#[derive(Debug, Clone)]
pub struct Want {
    /// Guest architecture.
    pub arch: Arch,
    /// Concrete machine type (`virt-10.0`, `pc-q35-10.0`).
    pub machine: String,
    /// Interface (`uefi`).
    pub interface: String,
    /// Secure Boot on (`Some(true)`), off (`Some(false)`) or either (`None`).
    pub secure_boot: Option<bool>,
    /// Keys enrolled (only meaningful with Secure Boot).
    pub enrolled_keys: Option<bool>,
}

/// A descriptor that did not fit, and why.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct Rejection {
    /// The descriptor file.
    pub source: PathBuf,
    /// Why.
    pub reason: String,
}

/// Why no firmware could be chosen.
#[derive(Debug, thiserror::Error)]
pub enum FirmwareError {
    /// No descriptor fits; each candidate says why.
    #[error("no firmware descriptor fits {arch}/{machine} ({interface}{secure}): {}", list(.rejected))]
    NoneFits {
        /// Requested arch.
        arch: Arch,
        /// Requested machine.
        machine: String,
        /// Requested interface.
        interface: String,
        /// Secure Boot wording.
        secure: String,
        /// Every candidate and its reason.
        rejected: Vec<Rejection>,
    },
}

fn list(r: &[Rejection]) -> String {
    if r.is_empty() {
        return "no descriptors found in /usr/share/qemu/firmware, /etc/qemu/firmware or $XDG_CONFIG_HOME/qemu/firmware (install qemu-efi-aarch64 / ovmf)".into();
    }
    r.iter()
        .map(|x| {
            format!(
                "{}: {}",
                x.source
                    .file_name()
                    .map_or("?".into(), |n| n.to_string_lossy().into_owned()),
                x.reason
            )
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// The standard search directories, in precedence order (later wins).
pub fn search_dirs() -> Vec<PathBuf> {
    let mut dirs = vec![
        PathBuf::from("/usr/share/qemu/firmware"),
        PathBuf::from("/etc/qemu/firmware"),
    ];
    let config = std::env::var_os("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")));
    if let Some(c) = config {
        dirs.push(c.join("qemu/firmware"));
    }
    dirs
}

/// Loads descriptors from `dirs` with QEMU's override and hiding rules.
/// Returns the descriptors in name order and the files that failed to parse.
pub fn load(dirs: &[PathBuf]) -> (Vec<Descriptor>, Vec<Rejection>) {
    let mut by_name: BTreeMap<String, PathBuf> = BTreeMap::new();
    for dir in dirs {
        let Ok(entries) = std::fs::read_dir(dir) else {
            continue;
        };
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.ends_with(".json") {
                by_name.insert(name, e.path());
            }
        }
    }
    let mut out = Vec::new();
    let mut bad = Vec::new();
    for path in by_name.into_values() {
        let Ok(text) = std::fs::read(&path) else {
            continue;
        };
        if text.iter().all(u8::is_ascii_whitespace) {
            continue; // an empty file hides the same-named descriptor
        }
        match serde_json::from_slice::<Descriptor>(&text) {
            Ok(mut d) => {
                d.source = path;
                out.push(d);
            }
            Err(e) => bad.push(Rejection {
                source: path,
                reason: format!("unreadable descriptor: {e}"),
            }),
        }
    }
    (out, bad)
}

fn glob(pattern: &str, s: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == s,
        Some((head, tail)) => {
            s.len() >= head.len() + tail.len() && s.starts_with(head) && s.ends_with(tail)
        }
    }
}

fn check(d: &Descriptor, want: &Want) -> Result<(), String> {
    if !d.interface_types.contains(&want.interface) {
        return Err(format!(
            "interface {} (want {})",
            d.interface_types.join(","),
            want.interface
        ));
    }
    let Some(target) = d.target_for(want.arch) else {
        let archs: Vec<&str> = d.targets.iter().map(|t| t.architecture.as_str()).collect();
        return Err(format!(
            "architecture {} (want {})",
            archs.join(","),
            want.arch
        ));
    };
    if !target.machines.iter().any(|m| glob(m, &want.machine)) {
        return Err(format!(
            "machines {} do not include {}",
            target.machines.join(","),
            want.machine
        ));
    }
    let has = |f: &str| d.has_feature(f);
    if let Some(sb) = want.secure_boot {
        if has("secure-boot") != sb {
            return Err(if sb {
                "no secure-boot feature".into()
            } else {
                "has secure-boot".into()
            });
        }
    }
    if let Some(keys) = want.enrolled_keys {
        if has("enrolled-keys") != keys {
            return Err(if keys {
                "keys not enrolled".into()
            } else {
                "keys enrolled".into()
            });
        }
    }
    if has("requires-smm") && want.arch == Arch::X86_64 && !want.machine.starts_with("pc-q35") {
        return Err("requires SMM (q35 only)".into());
    }
    match &d.mapping {
        Mapping::Flash {
            executable,
            nvram_template,
            mode,
        } => {
            if !executable.filename.exists() {
                return Err(format!(
                    "{} is not installed",
                    executable.filename.display()
                ));
            }
            if mode.as_deref().unwrap_or("split") == "split" {
                match nvram_template {
                    Some(t) if t.filename.exists() => {}
                    Some(t) => return Err(format!("{} is not installed", t.filename.display())),
                    None => return Err("split flash without an NVRAM template".into()),
                }
            }
            Ok(())
        }
        Mapping::Memory { filename } | Mapping::Kernel { filename } if !filename.exists() => {
            Err(format!("{} is not installed", filename.display()))
        }
        _ => Ok(()),
    }
}

/// Picks the first descriptor (in name order) that fits `want`.
pub fn select(descriptors: &[Descriptor], want: &Want) -> Result<Descriptor, FirmwareError> {
    let mut rejected = Vec::new();
    for d in descriptors {
        match check(d, want) {
            Ok(()) => return Ok(d.clone()),
            Err(reason) => rejected.push(Rejection {
                source: d.source.clone(),
                reason,
            }),
        }
    }
    Err(FirmwareError::NoneFits {
        arch: want.arch,
        machine: want.machine.clone(),
        interface: want.interface.clone(),
        secure: match want.secure_boot {
            Some(true) => ", Secure Boot".into(),
            Some(false) => ", no Secure Boot".into(),
            None => String::new(),
        },
        rejected,
    })
}

/// The size a raw pflash image must be padded to for this architecture's
/// machine, when it is short (aarch64 `virt` maps 64 MiB per unit and
/// rejects other sizes: "device requires 67108864 bytes"); `None` when it
/// can be used as it is.
pub fn padding(arch: Arch, format: &str, path: &Path) -> Option<u64> {
    let len = std::fs::metadata(path).ok()?.len();
    (format == "raw" && arch.pflash_needs_padding(len))
        .then_some(arch.info().pflash_bytes)
        .flatten()
}
