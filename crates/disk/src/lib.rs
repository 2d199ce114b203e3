//! Partition tables of a virtual disk.
//!
//! This crate owns the second pipeline stage: given the flat disk from
//! `bootproof-image`, find the partitions. It reads GPT (both headers, both
//! entry arrays, their CRCs, bounds and overlaps; 512- and 4096-byte
//! sectors), protective and hybrid MBRs, plain MBRs with extended/logical
//! partitions, and disks without a table (a bare filesystem).
//!
//! Problems are data: [`PartitionTable::diagnostics`] lists every problem
//! found (not just the first) so the checker can turn each into a finding.
//! Only an unreadable first sector is an error.
#![forbid(unsafe_code)]

mod diag;
mod gpt;
mod guid;
pub mod lvm;
mod mbr;
mod types;

pub use diag::{Diagnostic, Severity};
pub use guid::Guid;
pub use types::{gpt_type_name, mbr_type_name, ESP_GUID};

use bootproof_image::ReadAt;
use serde::Serialize;

/// Which kind of table the disk has.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum TableKind {
    /// GUID Partition Table (with a protective or hybrid MBR).
    Gpt,
    /// Classic DOS partition table.
    Mbr,
    /// No partition table: the whole disk is one filesystem (or empty).
    None,
}

/// What sector 0 holds next to a GPT.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum MbrKind {
    /// One 0xEE entry, as the UEFI spec requires.
    Protective,
    /// 0xEE plus real MBR entries (Apple Boot Camp style, some ISO hybrids).
    Hybrid,
    /// No MBR signature, or no 0xEE entry.
    Missing,
    /// A plain MBR (no GPT).
    Plain,
}

/// One partition.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct Partition {
    /// 1-based number as Linux would name it (`sda1`); logical MBR partitions start at 5.
    pub number: u32,
    /// Byte offset of the first byte.
    pub start: u64,
    /// Size in bytes.
    pub size: u64,
    /// First sector (in the table's sector size).
    pub first_lba: u64,
    /// Last sector, inclusive.
    pub last_lba: u64,
    /// GPT partition type GUID.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub type_guid: Option<Guid>,
    /// MBR partition type byte.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mbr_type: Option<u8>,
    /// Human name of the type, e.g. "EFI System", "Linux root (ARM64)".
    pub type_name: String,
    /// GPT partition name (PARTLABEL).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// PARTUUID: the GPT unique GUID, or `SSSSSSSS-NN` from the MBR disk signature.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub partuuid: Option<String>,
    /// GPT attribute bits.
    pub attributes: u64,
    /// MBR active flag.
    pub bootable: bool,
    /// An MBR logical partition inside an extended one.
    pub logical: bool,
}

impl Partition {
    /// Whether this is an EFI System Partition (GPT type or MBR 0xEF).
    pub fn is_esp(&self) -> bool {
        self.type_guid.as_ref().is_some_and(|g| *g == ESP_GUID) || self.mbr_type == Some(0xef)
    }
}

/// Facts about a GPT header (primary or backup).
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct GptHeaderInfo {
    /// LBA this header was read from.
    pub lba: u64,
    /// Whether its signature, size and CRC are valid.
    pub valid: bool,
    /// Whether its entry array's CRC matches.
    pub entries_valid: bool,
    /// The other header's LBA as recorded here.
    pub alternate_lba: u64,
    /// First and last usable LBAs.
    pub first_usable: u64,
    /// Last usable LBA.
    pub last_usable: u64,
    /// LBA of the entry array.
    pub entries_lba: u64,
    /// Number of entries and size of each.
    pub entry_count: u32,
    /// Size of each entry in bytes.
    pub entry_size: u32,
}

/// The partition table of a disk and everything noticed while reading it.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct PartitionTable {
    /// Which table was found.
    pub kind: TableKind,
    /// Logical sector size the table uses (512 or 4096).
    pub sector_size: u64,
    /// Disk size in bytes.
    pub disk_size: u64,
    /// GPT disk GUID, or the MBR disk signature as 8 hex digits.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub disk_id: Option<String>,
    /// What sector 0 holds.
    pub mbr: MbrKind,
    /// Primary GPT header, when one was found.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gpt_primary: Option<GptHeaderInfo>,
    /// Backup GPT header, when one was found.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gpt_backup: Option<GptHeaderInfo>,
    /// Partitions in table order (unused GPT slots are skipped).
    pub partitions: Vec<Partition>,
    /// Every problem found.
    pub diagnostics: Vec<Diagnostic>,
}

/// Reading the disk failed before anything could be examined.
#[derive(Debug, thiserror::Error)]
pub enum DiskError {
    /// Sector 0 could not be read.
    #[error("cannot read the first sector: {0}")]
    Io(#[from] std::io::Error),
}

/// Reads the partition table of `disk`.
pub fn read_partition_table(disk: &dyn ReadAt) -> Result<PartitionTable, DiskError> {
    let size = disk.size();
    let mut sector0 = [0u8; 512];
    if size < 512 {
        return Ok(PartitionTable::none(
            size,
            vec![Diagnostic::warning(
                "disk.too-small",
                format!("disk is {size} bytes, smaller than one sector"),
            )],
        ));
    }
    disk.read_at(0, &mut sector0)?;
    let mbr = mbr::Mbr::parse(&sector0);
    let mut diagnostics = Vec::new();

    for sector_size in [512u64, 4096] {
        if let Some(gpt) = gpt::read(disk, sector_size, &mut diagnostics)? {
            let mbr_kind = mbr.kind_next_to_gpt();
            if mbr_kind == MbrKind::Missing {
                diagnostics.push(Diagnostic::warning(
                    "mbr.no-protective",
                    "GPT disk has no protective MBR (0xEE entry); legacy tools may treat it as empty",
                ));
            } else if mbr_kind == MbrKind::Hybrid {
                diagnostics.push(Diagnostic::warning(
                    "mbr.hybrid",
                    "hybrid MBR: sector 0 lists real partitions next to the 0xEE entry; UEFI ignores them, BIOS tools see only them",
                ));
            }
            if let Some(e) = mbr.entries.iter().find(|e| e.kind == 0xee) {
                let disk_lbas = size / sector_size;
                let expect = (disk_lbas - 1).min(u64::from(u32::MAX));
                if e.start_lba != 1 {
                    diagnostics.push(Diagnostic::warning(
                        "mbr.protective-start",
                        format!("protective MBR entry starts at LBA {}, not 1", e.start_lba),
                    ));
                }
                if u64::from(e.sectors) != expect && e.sectors != u32::MAX {
                    diagnostics.push(Diagnostic::info(
                        "mbr.protective-size",
                        format!(
                            "protective MBR entry covers {} sectors, not the whole disk ({expect})",
                            e.sectors
                        ),
                    ));
                }
            }
            return Ok(gpt.into_table(size, mbr_kind, diagnostics));
        }
    }

    if mbr.signature_ok && mbr.looks_like_partition_table() {
        if mbr.entries.iter().any(|e| e.kind == 0xee) {
            diagnostics.push(Diagnostic::error(
                "gpt.missing",
                "protective MBR present but no valid GPT header at LBA 1 (512- or 4096-byte sectors)",
            ));
        }
        let partitions = mbr::partitions(disk, &mbr, &mut diagnostics)?;
        return Ok(PartitionTable {
            kind: TableKind::Mbr,
            sector_size: 512,
            disk_size: size,
            disk_id: Some(format!("{:08x}", mbr.disk_signature)),
            mbr: MbrKind::Plain,
            gpt_primary: None,
            gpt_backup: None,
            partitions,
            diagnostics,
        });
    }
    Ok(PartitionTable::none(size, diagnostics))
}

impl PartitionTable {
    /// A disk without a partition table (a bare filesystem, or empty).
    fn none(disk_size: u64, diagnostics: Vec<Diagnostic>) -> PartitionTable {
        PartitionTable {
            kind: TableKind::None,
            sector_size: 512,
            disk_size,
            disk_id: None,
            mbr: MbrKind::Missing,
            gpt_primary: None,
            gpt_backup: None,
            partitions: Vec::new(),
            diagnostics,
        }
    }
}
