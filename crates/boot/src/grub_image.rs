//! What a GRUB EFI image carries besides code: its module list (the `mods`
//! section: `grub_module_info` then `grub_module_header` records) holds the
//! embedded prefix, an embedded config script, and a memdisk: a tar archive
//! (`grub-mkstandalone` puts `boot/grub/grub.cfg` there) or a FAT image
//! (Debian's monolithic GRUB keeps its bootstrap `grub.cfg` in one).

use crate::pe::PeInfo;
use std::collections::{BTreeSet, HashMap};

const MODULE_MAGIC: &[u8; 4] = b"mimg";
const OBJ_TYPE_ELF: u32 = 0;
const OBJ_TYPE_MEMDISK: u32 = 1;
const OBJ_TYPE_CONFIG: u32 = 2;
const OBJ_TYPE_PREFIX: u32 = 3;
/// Largest memdisk file kept (configs are small; modules are not needed).
const MAX_MEMDISK_FILE: usize = 1 << 20;
const MAX_MEMDISK_FILES: usize = 4096;
/// Most embedded module names kept (GRUB has about 300 modules).
const MAX_MODULES: usize = 1024;

/// The embedded parts of a GRUB image.
#[derive(Debug, Default, Clone)]
pub struct GrubImage {
    /// `--prefix` given to grub-mkimage (e.g. `(memdisk)/boot/grub`, `/EFI/debian`).
    pub prefix: Option<String>,
    /// Embedded configuration script (`grub-mkimage -c`).
    pub config: Option<String>,
    /// Small files of the memdisk, by lower-case path without a leading `/`.
    pub memdisk: HashMap<String, Vec<u8>>,
    /// Names of the modules built into the image (each ELF object's
    /// `.modname`): the commands it has without loading anything.
    pub modules: BTreeSet<String>,
}

/// A GRUB module's name, from its `.modname` section.
fn module_name(elf: &[u8]) -> Option<String> {
    use object::{Object, ObjectSection};
    let file = object::File::parse(elf).ok()?;
    let name = file.section_by_name(".modname")?.data().ok()?;
    let name = c_string(name);
    (!name.is_empty() && name.len() < 64).then_some(name)
}

fn le32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}
fn le64(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(at..at + 8)?.try_into().ok()?))
}

fn c_string(b: &[u8]) -> String {
    String::from_utf8_lossy(&b[..b.iter().position(|&c| c == 0).unwrap_or(b.len())]).into_owned()
}

fn octal(b: &[u8]) -> Option<usize> {
    let s = c_string(b);
    usize::from_str_radix(s.trim(), 8).ok()
}

/// Lists a ustar archive's regular files (bounded).
fn tar(data: &[u8]) -> HashMap<String, Vec<u8>> {
    let mut out = HashMap::new();
    let mut pos = 0;
    while pos + 512 <= data.len() && out.len() < MAX_MEMDISK_FILES {
        let h = &data[pos..pos + 512];
        if h.iter().all(|&b| b == 0) {
            break;
        }
        let Some(size) = octal(&h[124..136]) else {
            break;
        };
        let mut name = c_string(&h[..100]);
        if &h[257..262] == b"ustar" {
            let prefix = c_string(&h[345..500]);
            if !prefix.is_empty() {
                name = format!("{prefix}/{name}");
            }
        }
        let start = pos + 512;
        let Some(end) = start.checked_add(size).filter(|&e| e <= data.len()) else {
            break;
        };
        if matches!(h[156], b'0' | 0) && size <= MAX_MEMDISK_FILE {
            out.insert(
                name.trim_start_matches("./")
                    .trim_start_matches('/')
                    .to_string(),
                data[start..end].to_vec(),
            );
        }
        pos = start + size.div_ceil(512) * 512;
    }
    out
}

/// The small files of a FAT memdisk (two directory levels, bounded).
fn fat(data: &[u8]) -> HashMap<String, Vec<u8>> {
    use bootproof_fs::{open_volume, FileType};
    let mut out = HashMap::new();
    let dev: std::sync::Arc<dyn bootproof_image::ReadAt> =
        std::sync::Arc::new(bootproof_image::MemImage(data.to_vec()));
    let Ok(Some(v)) = open_volume(dev) else {
        return out;
    };
    let mut dirs = vec![(String::new(), 0)];
    while let Some((dir, depth)) = dirs.pop() {
        let Ok(entries) = v.read_dir(format!("/{dir}").as_bytes()) else {
            continue;
        };
        for e in entries {
            if out.len() >= MAX_MEMDISK_FILES {
                return out;
            }
            let name = String::from_utf8_lossy(&e.name).to_lowercase();
            let path = if dir.is_empty() {
                name
            } else {
                format!("{dir}/{name}")
            };
            match e.file_type {
                FileType::Dir if depth < 2 => dirs.push((path, depth + 1)),
                FileType::File => {
                    if let Ok(b) =
                        v.read_limited(format!("/{path}").as_bytes(), MAX_MEMDISK_FILE as u64)
                    {
                        out.insert(path, b);
                    }
                }
                _ => {}
            }
        }
    }
    out
}

/// Reads the module list of a GRUB EFI image. `None` when there is none.
pub fn parse(data: &[u8], pe32_plus: bool) -> Option<GrubImage> {
    let mods = PeInfo::section_data(data, "mods").unwrap_or(data);
    let at = mods.windows(4).position(|w| w == MODULE_MAGIC)?;
    let info = &mods[at..];
    let (offset, size) = if pe32_plus {
        (le64(info, 8)? as usize, le64(info, 16)? as usize)
    } else {
        (le32(info, 4)? as usize, le32(info, 8)? as usize)
    };
    let end = size.min(info.len());
    let mut pos = offset;
    let mut img = GrubImage::default();
    // Checked: `offset` is the image's own 64-bit field (a crafted one
    // wrapped `pos + 8`; found replaying the boot_pe corpus with overflow
    // checks on).
    while pos.checked_add(8).is_some_and(|e| e <= end) {
        let kind = le32(info, pos)?;
        let len = le32(info, pos + 4)? as usize;
        let Some(next) = pos.checked_add(len).filter(|&n| len >= 8 && n <= end) else {
            break;
        };
        let body = &info[pos + 8..next];
        match kind {
            OBJ_TYPE_ELF if img.modules.len() < MAX_MODULES => {
                if let Some(name) = module_name(body) {
                    img.modules.insert(name);
                }
            }
            OBJ_TYPE_MEMDISK => {
                img.memdisk = if body.get(257..262) == Some(b"ustar") {
                    tar(body)
                } else {
                    fat(body)
                };
            }
            OBJ_TYPE_CONFIG => img.config = Some(c_string(body)),
            OBJ_TYPE_PREFIX => img.prefix = Some(c_string(body)),
            _ => {}
        }
        pos = next;
    }
    Some(img)
}
