//! An image opened through image → disk → fs.

use crate::selector::PartSelector;
use crate::{LookupError, OpenError};
use bootproof_disk::lvm::{self, FoundPv, Lvm};
use bootproof_disk::{read_partition_table, Partition, PartitionTable, TableKind};
use bootproof_fs::{open_volume, probe, FsKind, Volume};
use bootproof_image::{Image, OpenOptions, ReadAt, Slice};
use std::path::Path;
use std::sync::Arc;

/// One place a filesystem can live: a partition, or the whole disk.
pub struct Slot {
    /// Partition number; `0` for the whole disk when there is no table.
    pub number: u32,
    /// The partition entry (`None` for the whole disk).
    pub partition: Option<Partition>,
    /// What the superblock probe found.
    pub kind: FsKind,
    /// The opened filesystem, when readable.
    pub volume: Option<Volume>,
    /// Why it could not be opened, if it could not.
    pub error: Option<String>,
    /// Label and UUID as the filesystem reports them.
    pub label: Option<String>,
    /// Filesystem UUID.
    pub uuid: Option<String>,
    /// Whether it holds an OS root (`/etc/os-release` or `/usr/lib/os-release`).
    pub is_root: bool,
    /// For a volume found inside another (El Torito boot image): what it is
    /// and which slot holds it.
    pub origin: Option<String>,
    /// For an LVM2 logical volume: its volume group and name.
    pub lv: Option<LvName>,
}

/// An LVM2 logical volume's names.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, schemars::JsonSchema)]
pub struct LvName {
    /// The volume group.
    pub vg: String,
    /// The logical volume.
    pub lv: String,
    /// Its size in bytes.
    pub size: u64,
}

impl Slot {
    fn matches(&self, sel: &PartSelector) -> bool {
        let eq =
            |a: &Option<String>, b: &str| a.as_deref().is_some_and(|a| a.eq_ignore_ascii_case(b));
        match sel {
            PartSelector::Number(n) => self.number == *n,
            PartSelector::Label(l) => self.label.as_deref() == Some(l.as_str()),
            PartSelector::Uuid(u) => eq(&self.uuid, u),
            PartSelector::PartLabel(l) => {
                self.partition.as_ref().and_then(|p| p.name.as_deref()) == Some(l.as_str())
            }
            PartSelector::PartUuid(u) => {
                eq(&self.partition.as_ref().and_then(|p| p.partuuid.clone()), u)
            }
            PartSelector::Lv { vg, lv } => {
                self.lv.as_ref().is_some_and(|n| n.vg == *vg && n.lv == *lv)
            }
        }
    }
}

/// An image with its partition table and filesystems.
pub struct OpenedImage {
    /// The image file(s).
    pub image: Image,
    /// The partition table and its diagnostics.
    pub table: PartitionTable,
    /// Filesystem slots in table order (LVM2 logical volumes after the
    /// partitions).
    pub slots: Vec<Slot>,
    /// LVM2 volume groups assembled from the disk's physical volumes.
    pub lvm: Lvm,
}

fn open_slot(dev: Arc<dyn ReadAt>, number: u32, partition: Option<Partition>) -> Slot {
    let mut slot = Slot {
        number,
        partition,
        kind: FsKind::Unknown,
        volume: None,
        error: None,
        label: None,
        uuid: None,
        is_root: false,
        origin: None,
        lv: None,
    };
    match probe(&*dev) {
        Ok(kind) => slot.kind = kind,
        Err(e) => {
            slot.error = Some(e.to_string());
            return slot;
        }
    }
    if !slot.kind.is_readable() {
        return slot;
    }
    match open_volume(dev) {
        Ok(Some(v)) => {
            slot.label = v.fs().label();
            slot.uuid = v.fs().uuid();
            slot.is_root = [&b"/etc/os-release"[..], b"/usr/lib/os-release"]
                .iter()
                .any(|p| v.exists(p).unwrap_or(false));
            slot.volume = Some(v);
        }
        Ok(None) => {}
        Err(e) => slot.error = Some(e.to_string()),
    }
    slot
}

impl OpenedImage {
    /// Opens `path` read-only and every filesystem on it. Filesystems that
    /// fail to open are recorded in their slot, not fatal.
    pub fn open(path: impl AsRef<Path>, options: &OpenOptions) -> Result<OpenedImage, OpenError> {
        OpenedImage::from_image(Image::open(path, options)?)
    }

    /// Opens every filesystem of an image already opened (from a file or
    /// any [`ReadAt`], e.g. bytes in memory).
    pub fn from_image(image: Image) -> Result<OpenedImage, OpenError> {
        let disk = image.reader();
        let table = read_partition_table(&*disk)?;
        let devices: Vec<(Arc<dyn ReadAt>, u32, Option<Partition>)> =
            if table.kind == TableKind::None {
                vec![(Arc::clone(&disk), 0, None)]
            } else {
                table
                    .partitions
                    .iter()
                    .filter(|p| p.size > 0 && !matches!(p.mbr_type, Some(0x05 | 0x0f | 0x85)))
                    .map(|p| {
                        let dev: Arc<dyn ReadAt> =
                            Arc::new(Slice::new(Arc::clone(&disk), p.start, p.size));
                        (dev, p.number, Some(p.clone()))
                    })
                    .collect()
            };
        let mut next = devices.iter().map(|d| d.1).max().unwrap_or(0) + 1;
        let mut slots = Vec::new();
        let mut pvs = Vec::new();
        for (dev, number, partition) in devices {
            let slot = open_slot(Arc::clone(&dev), number, partition);
            if slot.kind == FsKind::Lvm2 {
                pvs.push(FoundPv {
                    place: format!("partition {number}"),
                    device: Arc::clone(&dev),
                    disk_offset: Some(slot.partition.as_ref().map_or(0, |p| p.start)),
                });
            }
            let embedded = slot
                .volume
                .as_ref()
                .map(|v| v.fs().embedded())
                .unwrap_or_default();
            slots.push(slot);
            // Volumes inside volumes (El Torito images) become slots of their own.
            for e in embedded {
                let inner: Arc<dyn ReadAt> =
                    Arc::new(Slice::new(Arc::clone(&dev), e.offset, e.size));
                let mut s = open_slot(inner, next, None);
                s.origin = Some(format!("{} in slot {number}, at byte {}", e.name, e.offset));
                slots.push(s);
                next += 1;
            }
        }
        // Logical volumes become slots of their own, after the partitions.
        let lvm = lvm::scan(&pvs);
        for vg in &lvm.vgs {
            for lv in &vg.lvs {
                let Some(dev) = &lv.device else { continue };
                let mut s = open_slot(Arc::clone(dev), next, None);
                s.origin = Some(format!("LVM2 logical volume {}/{}", vg.name, lv.name));
                s.lv = Some(LvName {
                    vg: vg.name.clone(),
                    lv: lv.name.clone(),
                    size: lv.size,
                });
                slots.push(s);
                next += 1;
            }
        }
        Ok(OpenedImage {
            image,
            table,
            slots,
            lvm,
        })
    }

    /// The slot a selector names.
    pub fn select(&self, sel: &PartSelector) -> Result<&Slot, LookupError> {
        self.slots
            .iter()
            .find(|s| s.matches(sel))
            .ok_or_else(|| LookupError::NoSuchPartition(sel.to_string()))
    }

    /// The readable volume a selector names.
    pub fn volume(&self, sel: &PartSelector) -> Result<(&Slot, &Volume), LookupError> {
        let slot = self.select(sel)?;
        match &slot.volume {
            Some(v) => Ok((slot, v)),
            None => Err(LookupError::Unreadable {
                number: slot.number,
                detail: slot
                    .error
                    .clone()
                    .unwrap_or_else(|| format!("found {}", slot.kind)),
            }),
        }
    }

    /// Slots with readable volumes, roots first, then table order.
    pub fn volumes_root_first(&self) -> impl Iterator<Item = (&Slot, &Volume)> {
        let roots = self.slots.iter().filter(|s| s.is_root);
        let rest = self.slots.iter().filter(|s| !s.is_root);
        roots
            .chain(rest)
            .filter_map(|s| s.volume.as_ref().map(|v| (s, v)))
    }

    /// The first volume (roots first) on which `path` exists.
    pub fn find(&self, path: &str) -> Result<(&Slot, &Volume), LookupError> {
        for (slot, v) in self.volumes_root_first() {
            if v.symlink_metadata(path.as_bytes()).is_ok() {
                return Ok((slot, v));
            }
        }
        Err(LookupError::NotOnAnyFilesystem(path.to_string()))
    }
}
