//! The `bootproof inspect` report (schema `bootproof.inspect/v1`).

use crate::opened::{OpenedImage, Slot};
use bootproof_disk::{PartitionTable, Severity};
use bootproof_fs::{FileType, Volume};
use bootproof_image::{ChainLink, ReadAt};
use serde::Serialize;
use std::collections::BTreeMap;

/// Schema identifier of [`InspectReport`]; bumped on incompatible change.
pub const INSPECT_SCHEMA: &str = "bootproof.inspect/v1";
/// Most ESP entries listed (a hostile ESP cannot flood the report).
const MAX_EFI_ENTRIES: usize = 1000;
const MAX_EFI_DEPTH: usize = 6;

/// Everything `inspect` found.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct InspectReport {
    /// The document's schema id, [`INSPECT_SCHEMA`].
    #[schemars(extend("const" = INSPECT_SCHEMA))]
    pub schema: &'static str,
    /// The image file and its chain.
    pub image: ImageInfo,
    /// The partition table (kind, GPT headers, partitions, diagnostics).
    pub partition_table: PartitionTable,
    /// One entry per partition (or the whole disk), then per LVM2 logical
    /// volume.
    pub filesystems: Vec<FsReport>,
    /// LVM2 volume groups (their PVs and every LV, readable or not).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub volume_groups: Vec<bootproof_disk::lvm::VolumeGroup>,
    /// Every problem found, across all stages.
    pub problems: Vec<Problem>,
}

/// The image file.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct ImageInfo {
    /// Format of the top layer.
    pub format: String,
    /// Virtual disk size in bytes.
    pub virtual_size: u64,
    /// Layers, top first.
    pub chain: Vec<ChainLink>,
    /// Bytes bootproof read from host files to produce this report.
    pub bytes_read: u64,
}

/// One filesystem slot.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct FsReport {
    /// Partition number (0 = whole disk).
    pub partition: u32,
    /// `blkid`-style type name (`vfat`, `ext4`, `xfs`, …), or `unknown`.
    #[serde(rename = "type")]
    pub fs_type: String,
    /// Variant detail (`FAT32`, `ext4`, …).
    pub variant: String,
    /// Whether files can be read from it.
    pub readable: bool,
    /// Label.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    /// UUID.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uuid: Option<String>,
    /// Roles inferred: `esp`, `root`, `boot`.
    pub roles: Vec<String>,
    /// For a volume inside another (El Torito boot image, LVM2 logical
    /// volume): what and where.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub origin: Option<String>,
    /// For an LVM2 logical volume: its volume group, name and size.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lv: Option<crate::LvName>,
    /// Why it could not be read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The ESP's `/EFI` tree (ESP only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub efi: Option<Vec<TreeEntry>>,
    /// Parsed os-release, for roots.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub os_release: Option<BTreeMap<String, String>>,
    /// Kernels and initrds found.
    pub boot_files: Vec<BootFile>,
}

/// A file in a listed tree.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct TreeEntry {
    /// Absolute path inside the filesystem.
    pub path: String,
    /// Entry type.
    pub file_type: FileType,
    /// Size in bytes (files).
    pub size: u64,
}

/// A kernel or initrd found under `/boot` (or the root of a boot partition).
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct BootFile {
    /// `kernel` or `initrd`.
    pub kind: &'static str,
    /// Absolute path inside the filesystem.
    pub path: String,
    /// Size in bytes (of the target, for symlinks).
    pub size: u64,
    /// Symlink target as stored, when the entry is a symlink.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub symlink_target: Option<String>,
}

/// A problem found while reading.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct Problem {
    /// `error`, `warning` or `info`.
    pub severity: Severity,
    /// Stable code, e.g. `gpt.backup.header-crc`, `fs.open`.
    pub code: String,
    /// What was found.
    pub message: String,
    /// The partition concerned, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub partition: Option<u32>,
}

fn parse_os_release(text: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for line in text.lines().take(1000) {
        let line = line.trim();
        if line.starts_with('#') {
            continue;
        }
        let Some((k, v)) = line.split_once('=') else {
            continue;
        };
        let v = v.trim();
        let v = if v.len() >= 2
            && ((v.starts_with('"') && v.ends_with('"'))
                || (v.starts_with('\'') && v.ends_with('\'')))
        {
            &v[1..v.len() - 1]
        } else {
            v
        };
        let v = v
            .replace("\\\"", "\"")
            .replace("\\$", "$")
            .replace("\\\\", "\\");
        out.insert(k.to_string(), v);
    }
    out
}

fn walk(v: &Volume, dir: &str, depth: usize, out: &mut Vec<TreeEntry>) {
    let Ok(entries) = v.read_dir(dir.as_bytes()) else {
        return;
    };
    for e in entries {
        if out.len() >= MAX_EFI_ENTRIES {
            return;
        }
        let path = format!(
            "{}/{}",
            dir.trim_end_matches('/'),
            String::from_utf8_lossy(&e.name)
        );
        let size = if e.file_type == FileType::File {
            v.symlink_metadata(path.as_bytes())
                .map(|m| m.size)
                .unwrap_or(0)
        } else {
            0
        };
        out.push(TreeEntry {
            path: path.clone(),
            file_type: e.file_type,
            size,
        });
        if e.file_type == FileType::Dir && depth < MAX_EFI_DEPTH {
            walk(v, &path, depth + 1, out);
        }
    }
}

fn boot_kind(name: &str) -> Option<&'static str> {
    const KERNEL: [&str; 6] = [
        "vmlinuz", "vmlinux", "Image", "kernel-", "bzImage", "zImage",
    ];
    const INITRD: [&str; 2] = ["initrd", "initramfs"];
    if KERNEL.iter().any(|p| name.starts_with(p)) {
        Some("kernel")
    } else if INITRD.iter().any(|p| name.starts_with(p)) {
        Some("initrd")
    } else {
        None
    }
}

fn boot_files(v: &Volume, dir: &str) -> Vec<BootFile> {
    let Ok(entries) = v.read_dir(dir.as_bytes()) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for e in entries {
        let name = String::from_utf8_lossy(&e.name).into_owned();
        let Some(kind) = boot_kind(&name) else {
            continue;
        };
        if !matches!(e.file_type, FileType::File | FileType::Symlink) {
            continue;
        }
        let path = format!("{}/{name}", dir.trim_end_matches('/'));
        let symlink_target = (e.file_type == FileType::Symlink)
            .then(|| v.read_link(path.as_bytes()).ok())
            .flatten()
            .map(|t| String::from_utf8_lossy(&t).into_owned());
        let size = v.metadata(path.as_bytes()).map(|m| m.size).unwrap_or(0);
        out.push(BootFile {
            kind,
            path,
            size,
            symlink_target,
        });
    }
    out
}

fn fs_report(slot: &Slot, problems: &mut Vec<Problem>) -> FsReport {
    let mut r = FsReport {
        partition: slot.number,
        fs_type: slot.kind.name().to_string(),
        variant: slot.kind.to_string(),
        readable: slot.volume.is_some(),
        label: slot.label.clone(),
        uuid: slot.uuid.clone(),
        roles: Vec::new(),
        origin: slot.origin.clone(),
        lv: slot.lv.clone(),
        error: slot.error.clone(),
        efi: None,
        os_release: None,
        boot_files: Vec::new(),
    };
    if let Some(e) = &slot.error {
        problems.push(Problem {
            severity: Severity::Error,
            code: "fs.open".into(),
            message: format!("{} filesystem cannot be read: {e}", slot.kind),
            partition: Some(slot.number),
        });
    }
    let Some(v) = &slot.volume else { return r };
    let has_efi = v
        .metadata(b"/EFI")
        .is_ok_and(|m| m.file_type == FileType::Dir);
    if slot.has_esp_type() || (slot.kind.is_fat() && has_efi) {
        r.roles.push("esp".into());
        let mut tree = Vec::new();
        if has_efi {
            walk(v, "/EFI", 0, &mut tree);
        }
        r.efi = Some(tree);
    }
    if slot.is_root {
        r.roles.push("root".into());
        for p in ["/etc/os-release", "/usr/lib/os-release"] {
            match v.read_limited(p.as_bytes(), 64 * 1024) {
                Ok(b) => {
                    r.os_release = Some(parse_os_release(&String::from_utf8_lossy(&b)));
                    break;
                }
                Err(bootproof_fs::FsError::NotFound(_)) => {}
                Err(e) => problems.push(Problem {
                    severity: Severity::Warning,
                    code: "fs.os-release".into(),
                    message: format!("{p}: {e}"),
                    partition: Some(slot.number),
                }),
            }
        }
        r.boot_files = boot_files(v, "/boot");
    }
    if !slot.is_root {
        let at_root = boot_files(v, "/");
        if !at_root.is_empty()
            || v.exists(b"/grub2").unwrap_or(false)
            || v.exists(b"/grub").unwrap_or(false)
            || v.exists(b"/loader/entries").unwrap_or(false)
        {
            r.roles.push("boot".into());
        }
        r.boot_files = at_root;
    }
    r
}

/// Builds the report for an opened image. Reading problems are listed in
/// [`InspectReport::problems`], never fatal.
pub fn inspect(img: &OpenedImage) -> InspectReport {
    let mut problems: Vec<Problem> = Vec::new();
    for link in img.image.chain() {
        for w in &link.warnings {
            problems.push(Problem {
                severity: Severity::Warning,
                code: "image.warning".into(),
                message: format!("{}: {w}", link.path.display()),
                partition: None,
            });
        }
    }
    for d in &img.table.diagnostics {
        problems.push(Problem {
            severity: d.severity,
            code: d.code.clone(),
            message: d.message.clone(),
            partition: None,
        });
    }
    for p in &img.lvm.problems {
        problems.push(Problem {
            severity: Severity::Warning,
            code: "lvm.metadata".into(),
            message: p.clone(),
            partition: None,
        });
    }
    for vg in &img.lvm.vgs {
        for lv in &vg.lvs {
            if let Some(why) = &lv.problem {
                problems.push(Problem {
                    severity: Severity::Warning,
                    code: "lvm.lv-unreadable".into(),
                    message: format!(
                        "logical volume {}/{} cannot be read: {why}",
                        vg.name, lv.name
                    ),
                    partition: None,
                });
            }
        }
    }
    let filesystems = img
        .slots
        .iter()
        .map(|s| fs_report(s, &mut problems))
        .collect();
    InspectReport {
        schema: INSPECT_SCHEMA,
        image: ImageInfo {
            format: img.image.format().to_string(),
            virtual_size: img.image.size(),
            chain: img.image.chain().to_vec(),
            bytes_read: img.image.stats().bytes_read(),
        },
        partition_table: img.table.clone(),
        filesystems,
        volume_groups: img.lvm.vgs.clone(),
        problems,
    }
}
