//! Following the boot chain the firmware would take on a fresh VM: the
//! removable-media path on the ESP, what that binary is, and the loader
//! configuration it reads, down to boot entries (kernel, initrds, command
//! line) and where each piece came from.

use crate::pe::{self, EfiKind, PeInfo};
use bootproof_fs::Volume;
use bootproof_inspect::{OpenedImage, Slot};
use serde::Serialize;
use std::collections::HashMap;

/// GPT type of the Boot Loader Specification's extended boot partition.
const XBOOTLDR: &str = "BC13C2FF-59E6-4262-A352-B275FD6F7172";
/// Largest config or EFI binary read while following the chain.
const MAX_CONFIG: u64 = 4 << 20;
const MAX_EFI: u64 = 256 << 20;
/// `configfile`/`source` hops followed.
const MAX_HOPS: usize = 8;

pub use bootproof_platform::Arch;

pub use bootproof_inspect::FileRef;

/// One way the image can boot.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct BootEntry {
    /// Title as the loader shows it.
    pub title: String,
    /// Where the entry is defined (`1:/loader/entries/x.conf`, `2:/boot/grub/grub.cfg`).
    pub source: String,
    /// The kernel (or UKI) file.
    pub kernel: FileRef,
    /// Initrds, in order (the loader concatenates them).
    pub initrds: Vec<FileRef>,
    /// Kernel command line as configured.
    pub cmdline: String,
    /// Whether the loader boots this one by default.
    pub default: bool,
    /// The kernel is a Unified Kernel Image (initrd and cmdline inside).
    pub uki: bool,
    /// Version from the entry, when it states one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
}

/// A problem met while following the chain.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct ChainProblem {
    /// Stable code, e.g. `chain.no-removable-path`.
    pub code: String,
    /// What was found.
    pub message: String,
}

/// The chain as followed.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct BootChain {
    /// Architecture followed.
    pub arch: Arch,
    /// The ESP slot used.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub esp: Option<u32>,
    /// The removable-path binary, when present.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub removable: Option<FileRef>,
    /// What that binary is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub removable_info: Option<PeInfo>,
    /// The loader shim starts (its `grub*.efi` beside it), when the
    /// removable path is shim.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub second_stage: Option<FileRef>,
    /// Each hop, in words ("shim loads 1:/EFI/BOOT/grubaa64.efi").
    pub steps: Vec<String>,
    /// Boot entries in menu order.
    pub entries: Vec<BootEntry>,
    /// Problems met.
    pub problems: Vec<ChainProblem>,
    /// The loader's menu timeout as configured (`5`, `-1`, `menu-force`;
    /// `None` when the loader has no menu or the chain did not reach it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub menu_timeout: Option<MenuTimeout>,
    /// Commands the loader's configuration runs that the loader lacks
    /// (GRUB: `blscfg` under a GRUB built without it), each with why.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub missing_commands: Vec<String>,
}

/// How long a loader's menu waits before booting the default entry.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, schemars::JsonSchema)]
pub struct MenuTimeout {
    /// The value as configured (`unset` when the loader never sets one).
    pub value: String,
    /// Where it was set (or which config left it unset).
    pub source: String,
    /// Whether the menu waits for a key press with no timeout.
    pub waits_for_key: bool,
}

impl BootChain {
    /// The entry booted by default.
    pub fn default_entry(&self) -> Option<&BootEntry> {
        self.entries
            .iter()
            .find(|e| e.default)
            .or(self.entries.first())
    }
    fn problem(&mut self, code: &str, message: impl Into<String>) {
        self.problems.push(ChainProblem {
            code: code.into(),
            message: message.into(),
        });
    }
}

fn vol(img: &OpenedImage, slot: u32) -> Option<&Volume> {
    img.slot_volume(slot).ok()
}

/// Guesses the guest architecture: the removable binary present, else the
/// root partition type, else the kernels' own headers.
pub fn detect_arch(img: &OpenedImage) -> Option<Arch> {
    for esp in img.esps() {
        for arch in Arch::ALL {
            if img.is_file(&FileRef::new(
                esp.number,
                format!("/EFI/BOOT/{}", arch.removable_name()),
            )) {
                return Some(arch);
            }
        }
    }
    img.slots.iter().find_map(|s| {
        let guid = s.partition.as_ref()?.type_guid.as_ref()?;
        Arch::from_partition_type(&guid.to_string())
    })
}

/// Compares versions the way `sort -V` roughly does (digit runs numerically).
pub fn version_cmp(a: &str, b: &str) -> std::cmp::Ordering {
    fn parts(s: &str) -> Vec<(bool, String)> {
        let mut out: Vec<(bool, String)> = Vec::new();
        for c in s.chars() {
            let d = c.is_ascii_digit();
            match out.last_mut() {
                Some((ld, run)) if *ld == d => run.push(c),
                _ => out.push((d, c.to_string())),
            }
        }
        out
    }
    let (pa, pb) = (parts(a), parts(b));
    for (x, y) in pa.iter().zip(&pb) {
        let o = if x.0 && y.0 {
            let (xs, ys) = (x.1.trim_start_matches('0'), y.1.trim_start_matches('0'));
            xs.len().cmp(&ys.len()).then_with(|| xs.cmp(ys))
        } else {
            x.1.cmp(&y.1)
        };
        if o != std::cmp::Ordering::Equal {
            return o;
        }
    }
    pa.len().cmp(&pb.len())
}
mod bls;
mod grub;
mod grub_script;

use bls::{systemd_boot, uki_entry};
use grub::grub_chain;

impl BootChain {
    fn empty(arch: Arch) -> BootChain {
        BootChain {
            arch,
            esp: None,
            removable: None,
            removable_info: None,
            second_stage: None,
            steps: Vec::new(),
            entries: Vec::new(),
            problems: Vec::new(),
            menu_timeout: None,
            missing_commands: Vec::new(),
        }
    }
}

/// An fnmatch-style matcher (`*`, `?`, `[...]`) in linear time, as
/// systemd-boot matches its `default` and a shell matches a `case` pattern.
pub fn glob(pattern: &str, name: &str) -> bool {
    bls::glob(pattern, name)
}

/// Entry points for the fuzz targets (`fuzz/`): the chain's text parsers
/// reached without building a boot image around each input. Not an API.
#[doc(hidden)]
pub mod fuzzing {
    use super::*;

    /// Runs `config` as the grub.cfg of a GRUB binary in `/EFI/BOOT` of
    /// `slot`, through the same interpreter and menu-to-entry step.
    pub fn grub_config(img: &OpenedImage, slot: u32, arch: Arch, config: &str) -> BootChain {
        let mut chain = BootChain::empty(arch);
        grub::grub_config(img, slot, arch, config, &mut chain);
        chain
    }

    /// Parses `text` as a Boot Loader Specification entry on `slot`.
    pub fn bls_entry(text: &str, slot: u32) -> (Option<BootEntry>, BootChain) {
        let mut chain = BootChain::empty(Arch::X86_64);
        let vars = |n: &str| (n.len() < 8).then(|| n.repeat(2));
        let e = bls::bls_entry(text, slot, "fuzz".into(), &vars, &mut chain);
        (e, chain)
    }

    /// systemd-boot's `default` pattern matcher.
    pub fn glob(pattern: &str, name: &str) -> bool {
        bls::glob(pattern, name)
    }
}

/// Follows the chain for `arch` from the ESP's removable-media path.
pub fn follow(img: &OpenedImage, arch: Arch) -> BootChain {
    let mut chain = BootChain::empty(arch);
    let esps = img.esps();
    let Some(esp) = esps.first() else {
        chain.problem(
            "chain.no-esp",
            "no EFI System Partition (GPT type C12A7328-…, or a FAT volume with /EFI)",
        );
        return chain;
    };
    chain.esp = Some(esp.number);
    let removable = FileRef {
        slot: esp.number,
        path: format!("/EFI/BOOT/{}", arch.removable_name()),
    };
    if !img.is_file(&removable) {
        let others: Vec<String> = img
            .list_names(esp.number, "/EFI")
            .into_iter()
            .filter(|d| !d.eq_ignore_ascii_case("BOOT"))
            .collect();
        chain.problem(
            "chain.no-removable-path",
            format!(
                "{removable} does not exist{}; a fresh VM's firmware finds nothing to boot",
                if others.is_empty() {
                    String::new()
                } else {
                    format!(
                        " (only vendor directories: /EFI/{})",
                        others.join(", /EFI/")
                    )
                }
            ),
        );
        return chain;
    }
    let Some(data) =
        vol(img, esp.number).and_then(|v| v.read_limited(removable.path.as_bytes(), MAX_EFI).ok())
    else {
        chain.problem("chain.unreadable", format!("{removable} cannot be read"));
        return chain;
    };
    let Some(info) = pe::analyze(&data) else {
        chain.problem(
            "chain.not-pe",
            format!("{removable} is not a PE/COFF image"),
        );
        return chain;
    };
    chain.steps.push(format!(
        "firmware runs {removable} ({:?}, {}, {})",
        info.kind,
        info.machine_name,
        if info.signed { "signed" } else { "unsigned" }
    ));
    chain.removable = Some(removable.clone());
    let kind = info.kind;
    chain.removable_info = Some(info);
    match kind {
        EfiKind::Shim => {
            let dir = "/EFI/BOOT";
            let next = img.list_names(esp.number, dir).into_iter().find(|n| {
                n.to_ascii_lowercase().starts_with("grub")
                    && n.to_ascii_lowercase().ends_with(".efi")
            });
            match next {
                Some(n) => {
                    let g = FileRef {
                        slot: esp.number,
                        path: format!("{dir}/{n}"),
                    };
                    chain.steps.push(format!("shim loads {g}"));
                    chain.second_stage = Some(g.clone());
                    grub_chain(img, &g, arch, &mut chain);
                }
                None => chain.problem(
                    "chain.shim-without-grub",
                    format!("shim at {removable} has no grub*.efi beside it to load"),
                ),
            }
        }
        EfiKind::Grub => grub_chain(img, &removable, arch, &mut chain),
        EfiKind::SystemdBoot => systemd_boot(img, esp.number, &mut chain),
        EfiKind::Uki => {
            if let Some(e) = uki_entry(img, &removable, true) {
                chain.entries.push(e);
            }
        }
        EfiKind::LinuxKernel => chain.entries.push(BootEntry {
            title: "EFI-stub kernel at the removable path".into(),
            source: removable.to_string(),
            kernel: removable.clone(),
            initrds: Vec::new(),
            cmdline: String::new(),
            default: true,
            uki: false,
            version: None,
        }),
        EfiKind::Other => chain.problem(
            "chain.unknown-loader",
            format!("{removable} is an EFI application bootproof does not know how to follow"),
        ),
    }
    if chain.entries.is_empty() && chain.problems.is_empty() {
        chain.problem(
            "chain.no-entries",
            "the boot loader's configuration defines no bootable entry",
        );
    }
    chain
}
