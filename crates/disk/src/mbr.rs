//! The DOS master boot record and extended boot records.

use crate::diag::Diagnostic;
use crate::types::mbr_type_name;
use crate::{MbrKind, Partition};
use bootproof_image::ReadAt;
use std::collections::HashSet;

/// Most logical partitions followed in an EBR chain (Linux allows far fewer
/// in practice; this bounds a hostile chain).
const MAX_LOGICAL: usize = 128;

/// One of the four primary entries.
#[derive(Debug, Clone, Copy)]
pub(crate) struct MbrEntry {
    pub status: u8,
    pub kind: u8,
    pub start_lba: u32,
    pub sectors: u32,
}

/// Sector 0 decoded.
pub(crate) struct Mbr {
    pub signature_ok: bool,
    pub disk_signature: u32,
    pub entries: Vec<MbrEntry>,
}

fn le32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}

fn entries(sector: &[u8]) -> Vec<MbrEntry> {
    (0..4)
        .map(|i| {
            let e = &sector[446 + 16 * i..446 + 16 * (i + 1)];
            MbrEntry {
                status: e[0],
                kind: e[4],
                start_lba: le32(e, 8),
                sectors: le32(e, 12),
            }
        })
        .filter(|e| e.kind != 0 && e.sectors != 0)
        .collect()
}

fn is_extended(kind: u8) -> bool {
    matches!(kind, 0x05 | 0x0f | 0x85)
}

impl Mbr {
    pub(crate) fn parse(sector: &[u8; 512]) -> Mbr {
        Mbr {
            signature_ok: sector[510] == 0x55 && sector[511] == 0xaa,
            disk_signature: le32(sector, 440),
            entries: if sector[510] == 0x55 && sector[511] == 0xaa {
                entries(sector)
            } else {
                Vec::new()
            },
        }
    }

    /// A FAT or NTFS boot sector also ends in 55 AA; a partition table has
    /// status bytes of 0x00/0x80 and at least one entry.
    pub(crate) fn looks_like_partition_table(&self) -> bool {
        !self.entries.is_empty() && self.entries.iter().all(|e| e.status & 0x7f == 0)
    }

    pub(crate) fn kind_next_to_gpt(&self) -> MbrKind {
        if !self.signature_ok || !self.entries.iter().any(|e| e.kind == 0xee) {
            MbrKind::Missing
        } else if self.entries.iter().any(|e| e.kind != 0xee) {
            MbrKind::Hybrid
        } else {
            MbrKind::Protective
        }
    }
}

fn partition(number: u32, e: &MbrEntry, start_lba: u64, disk_sig: u32, logical: bool) -> Partition {
    let sectors = u64::from(e.sectors);
    Partition {
        number,
        start: start_lba * 512,
        size: sectors * 512,
        first_lba: start_lba,
        last_lba: start_lba + sectors.saturating_sub(1),
        type_guid: None,
        mbr_type: Some(e.kind),
        type_name: mbr_type_name(e.kind),
        name: None,
        partuuid: Some(format!("{disk_sig:08x}-{number:02x}")),
        attributes: 0,
        bootable: e.status == 0x80,
        logical,
    }
}

/// Primary partitions, then logical ones from the EBR chain, each checked
/// against the disk size and each other.
pub(crate) fn partitions(
    disk: &dyn ReadAt,
    mbr: &Mbr,
    diags: &mut Vec<Diagnostic>,
) -> std::io::Result<Vec<Partition>> {
    let disk_lbas = disk.size() / 512;
    let mut out = Vec::new();
    let mut extended = None;
    for (i, e) in mbr.entries.iter().enumerate() {
        if is_extended(e.kind) {
            if extended.is_some() {
                diags.push(Diagnostic::error(
                    "mbr.multiple-extended",
                    "more than one extended partition; only the first is followed",
                ));
            } else {
                extended = Some(*e);
            }
            continue;
        }
        out.push(partition(
            i as u32 + 1,
            e,
            u64::from(e.start_lba),
            mbr.disk_signature,
            false,
        ));
    }
    if let Some(ext) = extended {
        let ext_start = u64::from(ext.start_lba);
        let mut next = ext_start;
        let mut seen = HashSet::new();
        let mut number = 5;
        while out.len() < MAX_LOGICAL + 4 {
            if !seen.insert(next) {
                diags.push(Diagnostic::error(
                    "mbr.ebr-loop",
                    format!("extended boot record chain loops back to LBA {next}"),
                ));
                break;
            }
            if next >= disk_lbas {
                diags.push(Diagnostic::error(
                    "mbr.ebr-out-of-bounds",
                    format!("extended boot record at LBA {next} is past the end of the disk"),
                ));
                break;
            }
            let mut s = [0u8; 512];
            disk.read_at(next * 512, &mut s)?;
            if s[510] != 0x55 || s[511] != 0xaa {
                diags.push(Diagnostic::error(
                    "mbr.ebr-signature",
                    format!("extended boot record at LBA {next} lacks the 55 AA signature"),
                ));
                break;
            }
            let es = entries(&s);
            if let Some(l) = es.iter().find(|e| !is_extended(e.kind)) {
                out.push(partition(
                    number,
                    l,
                    next + u64::from(l.start_lba),
                    mbr.disk_signature,
                    true,
                ));
                number += 1;
            }
            match es.iter().find(|e| is_extended(e.kind)) {
                Some(link) => next = ext_start + u64::from(link.start_lba),
                None => break,
            }
        }
        if out.len() >= MAX_LOGICAL + 4 {
            diags.push(Diagnostic::error(
                "mbr.too-many-logical",
                format!("more than {MAX_LOGICAL} logical partitions; the rest are ignored"),
            ));
        }
    }
    for p in &out {
        if p.last_lba >= disk_lbas {
            diags.push(Diagnostic::error(
                "mbr.partition-out-of-bounds",
                format!(
                    "partition {} (LBA {}..={}) extends past the end of the disk ({disk_lbas} sectors)",
                    p.number, p.first_lba, p.last_lba
                ),
            ));
        }
    }
    crate::gpt::report_overlaps(&out, "mbr", diags);
    Ok(out)
}
