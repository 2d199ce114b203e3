//! Where an image's OS root is and how the agent reaches it: the
//! filesystem `root=` names (else the one with an os-release), the modules
//! mounting it needs, and for a root on an LVM2 logical volume the runs of
//! the disk QEMU joins into a disk of its own.

use super::plan::Row;
use crate::launch::AGENT_MODULES;
use bootproof_agent::ROOT_WINDOW_SERIAL;
use bootproof_fs::FsKind;
use bootproof_inspect::{OpenedImage, PartSelector};
use bootproof_vm::prepare::DiskWindow;

/// The filesystem type to mount a root of this kind with.
pub(super) fn fs_type(kind: FsKind) -> Option<&'static str> {
    match kind {
        FsKind::Ext2 | FsKind::Ext3 | FsKind::Ext4 => Some("ext4"),
        FsKind::Xfs => Some("xfs"),
        FsKind::Btrfs => Some("btrfs"),
        _ => None,
    }
}

/// Modules a root of this type needs: the filesystem's own, and the
/// checksum it asks the crypto API for at mount time (a `softdep`, which
/// no symbol dependency pulls in: without it ext4 fails with ENOENT,
/// "Cannot load crc32c driver"). Built-in ones are skipped by the resolver.
pub(super) fn fs_modules(fstype: &str) -> &'static [&'static str] {
    match fstype {
        "ext4" => &["ext4", "crc32c_generic"],
        "xfs" => &["xfs", "crc32c_generic"],
        "btrfs" => &[
            "btrfs",
            "crc32c_generic",
            "xxhash_generic",
            "blake2b_generic",
            "sha256_generic",
        ],
        _ => &[],
    }
}

/// Where an image's OS root is, for the agent to mount.
pub(super) struct RootFs {
    pub(super) device: String,
    pub(super) fstype: &'static str,
    /// The LVM2 logical volume (`vg/lv`) holding it, when it is one, and
    /// where it lies on the disk when all of it is linear there.
    pub(super) lv: Option<(String, Option<Vec<bootproof_disk::lvm::DiskRun>>)>,
}

/// The OS root: the one the kernel command line's `root=` names
/// (`UUID=…`, `PARTUUID=…`, `LABEL=…`), else the filesystem with an
/// os-release.
pub(super) fn find_root(img: &OpenedImage, cmdline: Option<&str>) -> Result<RootFs, String> {
    let from_cmdline = cmdline
        .and_then(|c| c.split_whitespace().find_map(|t| t.strip_prefix("root=")))
        .and_then(PartSelector::from_device_ref)
        .and_then(|sel| img.select(&sel).ok());
    let root = from_cmdline
        .or_else(|| img.slots.iter().find(|s| s.is_root))
        .filter(|s| s.volume.is_some())
        .ok_or("no root filesystem: the kernel's root= names none in the image, and none has /etc/os-release")?;
    let fstype = fs_type(root.kind)
        .ok_or_else(|| format!("the OS root is {}, which `run` cannot mount", root.kind))?;
    let lv = root.lv.as_ref().map(|l| {
        let runs = img
            .lvm
            .vgs
            .iter()
            .filter(|vg| vg.name == l.vg)
            .flat_map(|vg| &vg.lvs)
            .find(|v| v.name == l.lv)
            .and_then(|v| v.disk_runs.clone());
        (format!("{}/{}", l.vg, l.lv), runs)
    });
    Ok(RootFs {
        device: match (&lv, &root.partition) {
            (Some(_), _) => format!("serial:{ROOT_WINDOW_SERIAL}"),
            (None, Some(_)) => format!("vda{}", root.number),
            (None, None) => "vda".into(),
        },
        fstype,
        lv,
    })
}

/// The modules the agent needs to mount a root of `fstype` and overlay it.
pub(super) fn wanted_modules(fstype: &str) -> Vec<&'static str> {
    let mut wanted: Vec<&str> = AGENT_MODULES.to_vec();
    wanted.extend(fs_modules(fstype));
    wanted.push("overlay");
    wanted
}

/// Records where the OS root is, when it was found. A root on an LVM2
/// logical volume reaches the guest as its runs of the disk joined into a
/// disk of their own; one that cannot (striped, or in pieces on an image
/// QEMU cannot join them over) makes the row's cells skipped, saying why.
pub(super) fn set_root(row: &mut Row, root: &Result<RootFs, String>) {
    let Ok(r) = root else { return };
    row.root_device.clone_from(&r.device);
    row.root_fstype = r.fstype.into();
    let Some((lv, runs)) = &r.lv else { return };
    let window = runs.as_ref().map(|runs| DiskWindow {
        runs: runs.iter().map(|r| (r.offset, r.size)).collect(),
        serial: ROOT_WINDOW_SERIAL.into(),
    });
    let why = match &window {
        None => Some("it is striped, which only a device mapper assembles".to_string()),
        Some(w) => w.unfit(row.disk.size, &row.disk.format),
    };
    match why {
        None => row.root_window = window,
        Some(why) => {
            row.unsupported = Some(format!(
                "the OS root is the LVM2 logical volume {lv}, which agent mode cannot hand the \
                 guest: {why}; `run --mode full` boots the image's own initramfs, which \
                 activates it"
            ))
        }
    }
}
