//! The GUID Partition Table: headers, entry arrays, and their consistency.

use crate::diag::Diagnostic;
use crate::guid::Guid;
use crate::types::gpt_type_name;
use crate::{GptHeaderInfo, MbrKind, Partition, PartitionTable, TableKind};
use bootproof_image::ReadAt;

/// Largest entry array read (UEFI has no limit; 128 × 128 bytes is the
/// norm). A header claiming more is reported and the array refused, so a
/// hostile `2^32` entry count cannot allocate gigabytes.
const MAX_ENTRY_ARRAY: u64 = 4 * 1024 * 1024;
const SIGNATURE: &[u8; 8] = b"EFI PART";

/// A parsed header with what was found about it.
struct Header {
    info: GptHeaderInfo,
    disk_guid: Guid,
    entries_crc: u32,
    entries: Option<Vec<u8>>,
}

fn le32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}
fn le64(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

/// Reads and checks one header at `lba`. `None` when there is no GPT
/// signature there at all. `which` is `primary` or `backup`.
fn read_header(
    disk: &dyn ReadAt,
    ss: u64,
    lba: u64,
    which: &str,
    diags: &mut Vec<Diagnostic>,
) -> std::io::Result<Option<Header>> {
    let disk_lbas = disk.size() / ss;
    if lba >= disk_lbas {
        return Ok(None);
    }
    let mut sector = vec![0u8; ss as usize];
    disk.read_at(lba * ss, &mut sector)?;
    if &sector[..8] != SIGNATURE {
        return Ok(None);
    }
    let code = |c: &str| format!("gpt.{which}.{c}");
    let mut valid = true;
    let header_size = le32(&sector, 12) as u64;
    if !(92..=ss).contains(&header_size) {
        diags.push(Diagnostic::error(
            &code("header-size"),
            format!("{which} header size {header_size} is outside 92..={ss}"),
        ));
        valid = false;
    } else {
        let stored = le32(&sector, 16);
        let mut copy = sector[..header_size as usize].to_vec();
        copy[16..20].fill(0);
        let computed = crc32fast::hash(&copy);
        if stored != computed {
            diags.push(Diagnostic::error(
                &code("header-crc"),
                format!("{which} header CRC32 is {stored:#010x}, computed {computed:#010x}"),
            ));
            valid = false;
        }
    }
    let revision = le32(&sector, 8);
    if revision != 0x0001_0000 {
        diags.push(Diagnostic::warning(
            &code("revision"),
            format!("{which} header revision {revision:#010x}, expected 0x00010000"),
        ));
    }
    let my_lba = le64(&sector, 24);
    if my_lba != lba {
        diags.push(Diagnostic::error(
            &code("my-lba"),
            format!("{which} header at LBA {lba} says it is at LBA {my_lba}"),
        ));
        valid = false;
    }
    let info = GptHeaderInfo {
        lba,
        valid,
        entries_valid: false,
        alternate_lba: le64(&sector, 32),
        first_usable: le64(&sector, 40),
        last_usable: le64(&sector, 48),
        entries_lba: le64(&sector, 72),
        entry_count: le32(&sector, 80),
        entry_size: le32(&sector, 84),
    };
    let mut disk_guid = [0u8; 16];
    disk_guid.copy_from_slice(&sector[56..72]);
    let entries_crc = le32(&sector, 88);
    let mut header = Header {
        info,
        disk_guid: Guid(disk_guid),
        entries_crc,
        entries: None,
    };
    let i = &header.info;
    if i.first_usable > i.last_usable || i.last_usable >= disk_lbas {
        diags.push(Diagnostic::error(
            &code("usable-range"),
            format!(
                "{which} header usable range LBA {}..={} does not fit the disk ({disk_lbas} sectors)",
                i.first_usable, i.last_usable
            ),
        ));
    }
    if i.entry_size < 128 || !i.entry_size.is_power_of_two() {
        diags.push(Diagnostic::error(
            &code("entry-size"),
            format!(
                "{which} header entry size {} is not 128 × 2^n",
                i.entry_size
            ),
        ));
        return Ok(Some(header));
    }
    let array_bytes = u64::from(i.entry_count) * u64::from(i.entry_size);
    if array_bytes > MAX_ENTRY_ARRAY {
        diags.push(Diagnostic::error(
            &code("entry-count"),
            format!(
                "{which} header claims {} entries of {} bytes ({array_bytes} bytes); refusing arrays over {MAX_ENTRY_ARRAY} bytes",
                i.entry_count, i.entry_size
            ),
        ));
        return Ok(Some(header));
    }
    let array_end = i
        .entries_lba
        .checked_mul(ss)
        .and_then(|s| s.checked_add(array_bytes));
    match array_end {
        Some(end) if end <= disk.size() && i.entries_lba >= 1 => {
            let mut arr = vec![0u8; array_bytes as usize];
            disk.read_at(i.entries_lba * ss, &mut arr)?;
            let computed = crc32fast::hash(&arr);
            if computed != entries_crc {
                diags.push(Diagnostic::error(
                    &code("entries-crc"),
                    format!(
                        "{which} partition entry array CRC32 is {entries_crc:#010x}, computed {computed:#010x}"
                    ),
                ));
            } else {
                header.info.entries_valid = true;
            }
            header.entries = Some(arr);
        }
        _ => diags.push(Diagnostic::error(
            &code("entries-bounds"),
            format!(
                "{which} partition entry array at LBA {} ({array_bytes} bytes) lies outside the disk",
                i.entries_lba
            ),
        )),
    }
    Ok(Some(header))
}

/// Decodes the entries of an array; unused (nil type) slots are skipped.
fn decode_entries(
    h: &Header,
    ss: u64,
    disk_lbas: u64,
    diags: &mut Vec<Diagnostic>,
) -> Vec<Partition> {
    let Some(arr) = &h.entries else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for (idx, e) in arr.chunks_exact(h.info.entry_size as usize).enumerate() {
        let mut t = [0u8; 16];
        t.copy_from_slice(&e[..16]);
        let type_guid = Guid(t);
        if type_guid.is_nil() {
            continue;
        }
        let mut u = [0u8; 16];
        u.copy_from_slice(&e[16..32]);
        let first = le64(e, 32);
        let last = le64(e, 40);
        let attributes = le64(e, 48);
        let units: Vec<u16> = e[56..128]
            .chunks_exact(2)
            .map(|c| u16::from_le_bytes([c[0], c[1]]))
            .take_while(|&c| c != 0)
            .collect();
        let name = String::from_utf16_lossy(&units);
        let number = idx as u32 + 1;
        if first > last {
            diags.push(Diagnostic::error(
                "gpt.entry.reversed",
                format!("partition {number}: first LBA {first} is after last LBA {last}"),
            ));
            continue;
        }
        if first < h.info.first_usable || last > h.info.last_usable {
            diags.push(Diagnostic::error(
                "gpt.entry.outside-usable",
                format!(
                    "partition {number} (LBA {first}..={last}) lies outside the usable range {}..={}",
                    h.info.first_usable, h.info.last_usable
                ),
            ));
        }
        if last >= disk_lbas {
            diags.push(Diagnostic::error(
                "gpt.entry.past-end",
                format!("partition {number} (LBA {first}..={last}) extends past the end of the disk ({disk_lbas} sectors)"),
            ));
        }
        let size = (last - first).saturating_add(1).saturating_mul(ss);
        out.push(Partition {
            number,
            start: first.saturating_mul(ss),
            size,
            first_lba: first,
            last_lba: last,
            type_name: gpt_type_name(&type_guid),
            type_guid: Some(type_guid),
            mbr_type: None,
            name: (!name.is_empty()).then_some(name),
            partuuid: Some(Guid(u).to_string().to_lowercase()),
            attributes,
            bootable: attributes & (1 << 2) != 0,
            logical: false,
        });
    }
    out
}

/// Overlapping pairs reported one by one; the rest are counted in one
/// diagnostic (4,096 entries over one range are 8 million pairs).
const MAX_OVERLAP_DIAGNOSTICS: usize = 32;

/// Reports pairs of partitions whose sector ranges intersect: the first
/// [`MAX_OVERLAP_DIAGNOSTICS`] each, then how many more.
pub(crate) fn report_overlaps(parts: &[Partition], table: &str, diags: &mut Vec<Diagnostic>) {
    let mut sorted: Vec<&Partition> = parts.iter().collect();
    sorted.sort_by_key(|p| p.first_lba);
    let mut more = 0u64;
    let mut reported = 0;
    for (i, a) in sorted.iter().enumerate() {
        for b in &sorted[i + 1..] {
            if b.first_lba > a.last_lba {
                break;
            }
            if reported == MAX_OVERLAP_DIAGNOSTICS {
                more += 1;
                continue;
            }
            reported += 1;
            diags.push(Diagnostic::error(
                &format!("{table}.overlap"),
                format!(
                    "partitions {} (LBA {}..={}) and {} (LBA {}..={}) overlap",
                    a.number, a.first_lba, a.last_lba, b.number, b.first_lba, b.last_lba
                ),
            ));
        }
    }
    if more > 0 {
        diags.push(Diagnostic::error(
            &format!("{table}.overlap"),
            format!("and {more} more overlapping pairs of partitions"),
        ));
    }
}

/// A GPT found at one sector size.
pub(crate) struct Gpt {
    sector_size: u64,
    primary: Option<Header>,
    backup: Option<Header>,
    partitions: Vec<Partition>,
    disk_guid: Guid,
}

impl Gpt {
    pub(crate) fn into_table(
        self,
        disk_size: u64,
        mbr: MbrKind,
        diagnostics: Vec<Diagnostic>,
    ) -> PartitionTable {
        PartitionTable {
            kind: TableKind::Gpt,
            sector_size: self.sector_size,
            disk_size,
            disk_id: Some(self.disk_guid.to_string()),
            mbr,
            gpt_primary: self.primary.map(|h| h.info),
            gpt_backup: self.backup.map(|h| h.info),
            partitions: self.partitions,
            diagnostics,
        }
    }
}

/// Looks for a GPT assuming `ss`-byte sectors. `None` when neither header
/// has the signature at this sector size.
pub(crate) fn read(
    disk: &dyn ReadAt,
    ss: u64,
    diags: &mut Vec<Diagnostic>,
) -> std::io::Result<Option<Gpt>> {
    let disk_lbas = disk.size() / ss;
    if disk_lbas < 3 {
        return Ok(None);
    }
    let mut local = Vec::new();
    let primary = read_header(disk, ss, 1, "primary", &mut local)?;
    // The backup lives where the primary says, or at the last LBA.
    let last = disk_lbas - 1;
    let backup_lba = primary
        .as_ref()
        .filter(|p| p.info.valid && p.info.alternate_lba < disk_lbas)
        .map(|p| p.info.alternate_lba)
        .unwrap_or(last);
    let mut backup = read_header(disk, ss, backup_lba, "backup", &mut local)?;
    if backup.is_none() && backup_lba != last {
        backup = read_header(disk, ss, last, "backup", &mut local)?;
    }
    if primary.is_none() && backup.is_none() {
        return Ok(None);
    }
    diags.append(&mut local);

    if let Some(p) = &primary {
        if p.info.valid && p.info.alternate_lba != last {
            diags.push(Diagnostic::warning(
                "gpt.primary.alternate-lba",
                format!(
                    "primary header puts the backup at LBA {}, not the last LBA {last} (disk grown or truncated?)",
                    p.info.alternate_lba
                ),
            ));
        }
    }
    match (&primary, &backup) {
        (None, _) => diags.push(Diagnostic::error(
            "gpt.primary.missing",
            "no primary GPT header at LBA 1; using the backup",
        )),
        (_, None) => diags.push(Diagnostic::error(
            "gpt.backup.missing",
            format!("no backup GPT header at LBA {backup_lba}"),
        )),
        (Some(p), Some(b)) => {
            if b.info.valid && b.info.alternate_lba != 1 {
                diags.push(Diagnostic::error(
                    "gpt.backup.alternate-lba",
                    format!(
                        "backup header names LBA {} as the primary, not 1",
                        b.info.alternate_lba
                    ),
                ));
            }
            if p.info.valid && b.info.valid {
                if p.disk_guid != b.disk_guid {
                    diags.push(Diagnostic::error(
                        "gpt.mismatch.disk-guid",
                        format!(
                            "primary disk GUID {} differs from backup {}",
                            p.disk_guid, b.disk_guid
                        ),
                    ));
                }
                // Compare the arrays themselves: a damaged copy can keep a
                // stored CRC that matches the other header.
                if p.entries_crc != b.entries_crc
                    || p.info.entry_count != b.info.entry_count
                    || p.info.entry_size != b.info.entry_size
                    || (p.entries.is_some() && b.entries.is_some() && p.entries != b.entries)
                {
                    diags.push(Diagnostic::error(
                        "gpt.mismatch.entries",
                        "primary and backup partition entry arrays differ",
                    ));
                }
                if p.info.first_usable != b.info.first_usable
                    || p.info.last_usable != b.info.last_usable
                {
                    diags.push(Diagnostic::error(
                        "gpt.mismatch.usable-range",
                        "primary and backup headers disagree on the usable LBA range",
                    ));
                }
            }
        }
    }
    // Use the first header whose header and entries are intact, like firmware does.
    let good = |h: &Option<Header>| {
        h.as_ref()
            .is_some_and(|h| h.info.valid && h.info.entries_valid)
    };
    let source = if good(&primary) {
        primary.as_ref()
    } else if good(&backup) {
        if primary.is_some() {
            diags.push(Diagnostic::error(
                "gpt.using-backup",
                "primary GPT is damaged; partitions are read from the backup",
            ));
        }
        backup.as_ref()
    } else {
        diags.push(Diagnostic::error(
            "gpt.no-valid-copy",
            "neither GPT copy is intact; partitions shown come from the least damaged one",
        ));
        primary
            .as_ref()
            .filter(|h| h.entries.is_some())
            .or(backup.as_ref().filter(|h| h.entries.is_some()))
            .or(primary.as_ref())
            .or(backup.as_ref())
    };
    let Some(source) = source else {
        unreachable!("read() returns early when neither header exists")
    };
    let disk_guid = source.disk_guid;
    let partitions = decode_entries(source, ss, disk_lbas, diags);
    report_overlaps(&partitions, "gpt", diags);
    if let Some(p) = &primary {
        if p.info.valid && p.info.first_usable > 0 {
            let array_end_lba = p.info.entries_lba.saturating_add(
                (u64::from(p.info.entry_count) * u64::from(p.info.entry_size)).div_ceil(ss),
            );
            if array_end_lba > p.info.first_usable {
                diags.push(Diagnostic::error(
                    "gpt.primary.entries-overlap-usable",
                    format!(
                        "primary entry array ends at LBA {array_end_lba}, after the first usable LBA {}",
                        p.info.first_usable
                    ),
                ));
            }
        }
    }
    Ok(Some(Gpt {
        sector_size: ss,
        primary,
        backup,
        partitions,
        disk_guid,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn part(number: u32, first_lba: u64, last_lba: u64) -> Partition {
        Partition {
            number,
            start: first_lba * 512,
            size: (last_lba + 1 - first_lba) * 512,
            first_lba,
            last_lba,
            type_guid: None,
            mbr_type: None,
            type_name: String::new(),
            name: None,
            partuuid: None,
            attributes: 0,
            bootable: false,
            logical: false,
        }
    }

    #[test]
    fn overlap_diagnostics_are_capped() {
        let mut diags = Vec::new();
        report_overlaps(&[part(1, 34, 100), part(2, 101, 200)], "gpt", &mut diags);
        assert!(diags.is_empty());
        report_overlaps(&[part(1, 34, 100), part(2, 100, 200)], "gpt", &mut diags);
        assert_eq!(diags.len(), 1);
        // 4,096 entries over one range: 8,386,560 pairs, 33 diagnostics.
        let all: Vec<Partition> = (1..=4096).map(|n| part(n, 34, 2047)).collect();
        let mut diags = Vec::new();
        report_overlaps(&all, "gpt", &mut diags);
        assert_eq!(diags.len(), MAX_OVERLAP_DIAGNOSTICS + 1);
        let last = &diags.last().unwrap().message;
        assert!(
            last.contains(&format!(
                "{} more",
                4096 * 4095 / 2 - MAX_OVERLAP_DIAGNOSTICS
            )),
            "{last}"
        );
    }
}
