//! A physical volume's on-disk label and metadata area (lvm2's
//! `lib/format_text/layout.h`): the `LABELONE` label in one of the first
//! four sectors, the PV header after it (UUID, data and metadata area
//! locations), and in the first metadata area a header (` LVM2 x[5A%r0N*>`)
//! whose first raw location points at the current metadata text, which
//! may wrap around the end of the circular area.

use bootproof_image::ReadAt;

const LABEL_SCAN_SECTORS: u64 = 4;
const MDA_MAGIC: &[u8; 16] = b" LVM2 x[5A%r0N*>";
const MDA_HEADER_SIZE: u64 = 512;
/// Largest metadata text read (lvm2's default area is 1 MiB).
pub const MAX_METADATA: u64 = 16 << 20;
/// Most data or metadata area locations listed in a PV header.
const MAX_AREAS: usize = 16;

/// What a PV says about itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PvLabel {
    /// The PV UUID, 32 characters without dashes.
    pub uuid: String,
    /// The current metadata text (from the first valid metadata area).
    pub metadata: Option<String>,
    /// Why a metadata area could not be read, when one could not.
    pub problems: Vec<String>,
}

/// lvm2's checksum (`calc_crc`): CRC-32 (reflected 0xEDB88320) from an
/// initial 0xf597a6cf, without the final inversion.
pub fn lvm_crc(data: &[u8]) -> u32 {
    let mut crc: u32 = 0xf597_a6cf;
    for b in data {
        crc ^= u32::from(*b);
        for _ in 0..8 {
            crc = (crc >> 1) ^ (0xEDB8_8320 & (crc & 1).wrapping_neg());
        }
    }
    crc
}

fn le32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}
fn le64(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

/// Reads the label of `dev`; `Ok(None)` when it has none.
pub fn read_label(dev: &dyn ReadAt) -> Result<Option<PvLabel>, String> {
    let mut sector = [0u8; 512];
    for n in 0..LABEL_SCAN_SECTORS {
        if (n + 1) * 512 > dev.size() {
            break;
        }
        dev.read_at(n * 512, &mut sector)
            .map_err(|e| e.to_string())?;
        if &sector[..8] != b"LABELONE" || &sector[24..32] != b"LVM2 001" {
            continue;
        }
        if lvm_crc(&sector[20..]) != le32(&sector, 16) {
            return Err(format!("the PV label in sector {n} fails its checksum"));
        }
        let at = le32(&sector, 20) as usize;
        if at + 40 > 512 {
            return Err(format!("PV header offset {at} outside the label sector"));
        }
        return Ok(Some(pv_header(dev, &sector[at..])?));
    }
    Ok(None)
}

/// The PV header (UUID, device size, then zero-terminated lists of data
/// and metadata areas) and the metadata its first readable area holds.
fn pv_header(dev: &dyn ReadAt, h: &[u8]) -> Result<PvLabel, String> {
    let uuid = String::from_utf8_lossy(&h[..32]).into_owned();
    let mut at = 40; // uuid, device size
    let mut lists: [Vec<(u64, u64)>; 2] = [Vec::new(), Vec::new()];
    for list in &mut lists {
        loop {
            if at + 16 > h.len() {
                return Err("PV header area lists run past the label sector".into());
            }
            let (offset, size) = (le64(h, at), le64(h, at + 8));
            at += 16;
            if offset == 0 {
                break;
            }
            if list.len() >= MAX_AREAS {
                return Err(format!("more than {MAX_AREAS} areas in the PV header"));
            }
            list.push((offset, size));
        }
    }
    let mut label = PvLabel {
        uuid,
        metadata: None,
        problems: Vec::new(),
    };
    for (offset, size) in &lists[1] {
        match metadata_text(dev, *offset, *size) {
            Ok(text) => {
                label.metadata = Some(text);
                break;
            }
            Err(e) => label
                .problems
                .push(format!("metadata area at {offset}: {e}")),
        }
    }
    Ok(label)
}

/// The current metadata text of the area at `start` (`size` bytes).
fn metadata_text(dev: &dyn ReadAt, start: u64, size: u64) -> Result<String, String> {
    if size < MDA_HEADER_SIZE || start.checked_add(size).is_none_or(|e| e > dev.size()) {
        return Err(format!("an area of {size} bytes outside the device"));
    }
    let mut h = [0u8; 512];
    dev.read_at(start, &mut h).map_err(|e| e.to_string())?;
    if &h[4..20] != MDA_MAGIC {
        return Err("no metadata area header".into());
    }
    if lvm_crc(&h[4..]) != le32(&h, 0) {
        return Err("the metadata area header fails its checksum".into());
    }
    // raw_locn[0]: offset (from the area's start), size, checksum, flags.
    let (offset, len, sum) = (le64(&h, 40), le64(&h, 48), le32(&h, 56));
    if offset == 0 || len == 0 {
        return Err("no metadata committed".into());
    }
    if len > MAX_METADATA
        || len > size - MDA_HEADER_SIZE
        || offset >= size
        || offset < MDA_HEADER_SIZE
    {
        return Err(format!(
            "metadata of {len} bytes at {offset} does not fit the area"
        ));
    }
    // The text may wrap from the area's end back to just after its header.
    let mut text = vec![0u8; len as usize];
    let first = len.min(size - offset) as usize;
    dev.read_at(start + offset, &mut text[..first])
        .map_err(|e| e.to_string())?;
    if first < text.len() {
        dev.read_at(start + MDA_HEADER_SIZE, &mut text[first..])
            .map_err(|e| e.to_string())?;
    }
    if lvm_crc(&text) != sum {
        return Err("the metadata text fails its checksum".into());
    }
    let end = text.iter().position(|b| *b == 0).unwrap_or(text.len());
    Ok(String::from_utf8_lossy(&text[..end]).into_owned())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use bootproof_image::MemImage;

    /// A PV of 1 MiB: label in sector 1, one metadata area at 4096 of
    /// 64 KiB holding `text` at `at` (wrapping when it runs past the end).
    pub(crate) fn pv(text: &str, at: u64) -> Vec<u8> {
        pv_with(text, at, b"9A2i00MMJGRMU2pXzd2je8CgULZJ1rI3")
    }

    /// The same with another PV UUID.
    pub(crate) fn pv_with(text: &str, at: u64, uuid: &[u8; 32]) -> Vec<u8> {
        let mut v = vec![0u8; 1 << 20];
        let label = 512;
        v[label..label + 8].copy_from_slice(b"LABELONE");
        v[label + 8..label + 16].copy_from_slice(&1u64.to_le_bytes());
        v[label + 20..label + 24].copy_from_slice(&32u32.to_le_bytes());
        v[label + 24..label + 32].copy_from_slice(b"LVM2 001");
        let h = label + 32;
        v[h..h + 32].copy_from_slice(uuid);
        v[h + 40..h + 48].copy_from_slice(&(1u64 << 19).to_le_bytes()); // data area
        v[h + 72..h + 80].copy_from_slice(&4096u64.to_le_bytes()); // metadata area
        v[h + 80..h + 88].copy_from_slice(&65536u64.to_le_bytes());
        let sum = lvm_crc(&v[label + 20..label + 512]);
        v[label + 16..label + 20].copy_from_slice(&sum.to_le_bytes());
        let mda = 4096usize;
        v[mda + 4..mda + 20].copy_from_slice(MDA_MAGIC);
        v[mda + 40..mda + 48].copy_from_slice(&at.to_le_bytes());
        v[mda + 48..mda + 56].copy_from_slice(&(text.len() as u64).to_le_bytes());
        v[mda + 56..mda + 60].copy_from_slice(&lvm_crc(text.as_bytes()).to_le_bytes());
        let sum = lvm_crc(&v[mda + 4..mda + 512]);
        v[mda..mda + 4].copy_from_slice(&sum.to_le_bytes());
        for (i, b) in text.bytes().enumerate() {
            let mut off = at as usize + i;
            if off >= 65536 {
                off = off - 65536 + 512;
            }
            v[mda + off] = b;
        }
        v
    }

    #[test]
    fn the_label_and_metadata_read_back_even_wrapped() {
        for at in [512u64, 65536 - 10] {
            let l = read_label(&MemImage(pv("vg { seqno = 1 }", at)))
                .unwrap()
                .unwrap();
            assert_eq!(l.uuid, "9A2i00MMJGRMU2pXzd2je8CgULZJ1rI3");
            assert_eq!(l.metadata.as_deref(), Some("vg { seqno = 1 }"), "at {at}");
        }
        assert_eq!(read_label(&MemImage(vec![0; 4096])).unwrap(), None);
    }

    #[test]
    fn damaged_labels_and_areas_are_reported() {
        // A flipped label byte: the checksum catches it.
        let mut v = pv("vg {}", 512);
        v[512 + 100] ^= 1;
        assert!(read_label(&MemImage(v)).is_err());
        // Flipped metadata text: the area is reported, the PV still read.
        let mut v = pv("vg {}", 512);
        v[4096 + 513] ^= 1;
        let l = read_label(&MemImage(v)).unwrap().unwrap();
        assert_eq!(l.metadata, None);
        assert!(l.problems[0].contains("checksum"), "{:?}", l.problems);
        // An area past the device; a text longer than its area.
        let mut v = pv("vg {}", 512);
        v[512 + 32 + 72..512 + 32 + 80].copy_from_slice(&(1u64 << 40).to_le_bytes());
        let sum = lvm_crc(&v[512 + 20..1024]);
        v[512 + 16..512 + 20].copy_from_slice(&sum.to_le_bytes());
        assert!(read_label(&MemImage(v))
            .unwrap()
            .unwrap()
            .metadata
            .is_none());
    }
}
