//! The El Torito boot catalog: which boot images an ISO carries.

use super::{le32, Iso9660, SECTOR};
use crate::error::FsError;
use crate::Embedded;

/// Entries examined in the catalog (a catalog is one or a few sectors).
const MAX_ENTRIES: usize = 256;

fn platform(id: u8) -> &'static str {
    match id {
        0x00 => "x86 BIOS",
        0x01 => "PowerPC",
        0x02 => "Mac",
        0xef => "EFI",
        _ => "unknown platform",
    }
}

/// Size of a no-emulation image: the sector count is often a placeholder
/// (0 or 1), so a FAT image's own BPB is trusted when it is there.
fn image_size(fs: &Iso9660, offset: u64, sectors: u16) -> u64 {
    let mut bpb = [0u8; 512];
    if fs.dev.read_at(offset, &mut bpb).is_ok() && bpb[510] == 0x55 && bpb[511] == 0xaa {
        let bps = u64::from(u16::from_le_bytes([bpb[11], bpb[12]]));
        let small = u64::from(u16::from_le_bytes([bpb[19], bpb[20]]));
        let total = if small != 0 {
            small
        } else {
            u64::from(le32(&bpb, 32))
        };
        if matches!(bps, 512 | 1024 | 2048 | 4096) && total > 0 {
            return bps * total;
        }
    }
    u64::from(sectors) * 512
}

/// Lists the catalog's boot images, clamped to the device.
pub(crate) fn boot_images(fs: &Iso9660, catalog_lba: u64) -> Result<Vec<Embedded>, FsError> {
    let mut cat = vec![0u8; 2 * SECTOR as usize];
    let n = (fs.dev.size().saturating_sub(catalog_lba * SECTOR)).min(cat.len() as u64) as usize;
    fs.read(catalog_lba * SECTOR, &mut cat[..n])?;
    let cat = &cat[..n];
    if cat.len() < 64 || cat[0] != 1 || cat[30] != 0x55 || cat[31] != 0xaa {
        return Ok(Vec::new());
    }
    let mut out = Vec::new();
    let mut plat = cat[1];
    let push = |e: &[u8], plat: u8, out: &mut Vec<Embedded>| {
        if e[0] != 0x88 && e[0] != 0x00 {
            return;
        }
        let lba = u64::from(le32(e, 8));
        let offset = lba * SECTOR;
        if offset >= fs.dev.size() {
            return;
        }
        let size =
            image_size(fs, offset, u16::from_le_bytes([e[6], e[7]])).min(fs.dev.size() - offset);
        out.push(Embedded {
            name: format!(
                "El Torito boot image {} ({})",
                out.len() + 1,
                platform(plat)
            ),
            offset,
            size,
        });
    };
    push(&cat[32..64], plat, &mut out);
    let mut pos = 64;
    let mut seen = 0;
    while pos + 32 <= cat.len() && seen < MAX_ENTRIES {
        let h = &cat[pos..pos + 32];
        seen += 1;
        match h[0] {
            0x90 | 0x91 => {
                plat = h[1];
                let count = usize::from(u16::from_le_bytes([h[2], h[3]]));
                pos += 32;
                for _ in 0..count {
                    if pos + 32 > cat.len() {
                        break;
                    }
                    push(&cat[pos..pos + 32], plat, &mut out);
                    pos += 32;
                }
                if h[0] == 0x91 {
                    break;
                }
            }
            _ => break,
        }
    }
    Ok(out)
}
