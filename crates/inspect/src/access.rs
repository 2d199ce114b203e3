//! File access on an opened image, written once for every later stage: a
//! [`FileRef`] (slot and path) read whole, as text, tested or listed; a
//! `[PART:]PATH` target located; a directory listed with metadata; and
//! which slots are EFI System Partitions. The boot chain, extraction,
//! the static checks and the CLI all go through these.

use crate::{LookupError, OpenedImage, PartSelector, Slot, Target};
use bootproof_fs::{FileType, Metadata, Volume};
use serde::Serialize;
use std::fmt;

/// A file inside the image: slot (partition number) and path.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct FileRef {
    /// Partition number (as in `bootproof inspect`).
    pub slot: u32,
    /// Absolute path inside that filesystem.
    pub path: String,
}

impl FileRef {
    /// The file at `path` on slot `slot`.
    pub fn new(slot: u32, path: impl Into<String>) -> FileRef {
        FileRef {
            slot,
            path: path.into(),
        }
    }
}

impl fmt::Display for FileRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.slot, self.path)
    }
}

impl Slot {
    /// Whether the partition table gives this slot the EFI System type.
    pub fn has_esp_type(&self) -> bool {
        self.partition
            .as_ref()
            .is_some_and(bootproof_disk::Partition::is_esp)
    }

    /// Whether this is a FAT filesystem with an `/EFI` directory: what
    /// firmware looks for, whatever the partition type says.
    pub fn holds_efi_dir(&self) -> bool {
        self.kind.is_fat()
            && self.volume.as_ref().is_some_and(|v| {
                v.metadata(b"/EFI")
                    .is_ok_and(|m| m.file_type == FileType::Dir)
            })
    }

    /// Whether this slot is an EFI System Partition: by partition type, or
    /// a FAT volume holding `/EFI` on a disk without a partition table.
    pub fn is_esp(&self) -> bool {
        self.has_esp_type() || (self.partition.is_none() && self.holds_efi_dir())
    }
}

/// One entry of a listing (`bootproof ls`).
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct ListEntry {
    /// The name in its directory (the path itself when a file was listed).
    pub name: String,
    /// What `lstat` would say.
    #[serde(flatten)]
    pub meta: Metadata,
    /// A symlink's target.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
}

impl OpenedImage {
    /// The readable volume of slot number `slot`.
    pub fn slot_volume(&self, slot: u32) -> Result<&Volume, LookupError> {
        self.volume(&PartSelector::Number(slot)).map(|(_, v)| v)
    }

    /// A file's bytes, at most `limit` of them (a larger file is an error).
    pub fn read(&self, f: &FileRef, limit: u64) -> Result<Vec<u8>, LookupError> {
        Ok(self
            .slot_volume(f.slot)?
            .read_limited(f.path.as_bytes(), limit)?)
    }

    /// A file as a stream, with its size: for files too large to hold
    /// (initrds), read as they are used.
    pub fn open_file(
        &self,
        f: &FileRef,
    ) -> Result<(Box<dyn std::io::Read + '_>, u64), LookupError> {
        Ok(self.slot_volume(f.slot)?.open(f.path.as_bytes())?)
    }

    /// A file as text (lossy UTF-8), when it can be read within `limit`.
    pub fn read_text(&self, f: &FileRef, limit: u64) -> Option<String> {
        self.read(f, limit)
            .ok()
            .map(|b| String::from_utf8_lossy(&b).into_owned())
    }

    /// Whether `f` is a regular file (following symlinks inside the image).
    pub fn is_file(&self, f: &FileRef) -> bool {
        self.slot_volume(f.slot).is_ok_and(|v| {
            v.metadata(f.path.as_bytes())
                .is_ok_and(|m| m.file_type == FileType::File)
        })
    }

    /// The names in directory `dir` of slot `slot` (empty when unreadable).
    pub fn list_names(&self, slot: u32, dir: &str) -> Vec<String> {
        self.slot_volume(slot)
            .ok()
            .and_then(|v| v.read_dir(dir.as_bytes()).ok())
            .unwrap_or_default()
            .into_iter()
            .map(|e| String::from_utf8_lossy(&e.name).into_owned())
            .collect()
    }

    /// The slot and volume a `[PART:]PATH` target names: its partition, or
    /// the first filesystem (OS roots first) that has the path.
    pub fn locate(&self, target: &Target) -> Result<(&Slot, &Volume), LookupError> {
        match &target.part {
            Some(sel) => self.volume(sel),
            None => self.find(&target.path),
        }
    }

    /// What `ls -l` shows for a target: a directory's entries, or the file
    /// itself; symlinks are not followed for the entries and their targets
    /// are read inside the image.
    pub fn list(&self, target: &Target) -> Result<(&Slot, Vec<ListEntry>), LookupError> {
        let (slot, vol) = self.locate(target)?;
        let path = target.path.as_bytes();
        let names: Vec<Vec<u8>> = if vol.metadata(path)?.file_type == FileType::Dir {
            vol.read_dir(path)?.into_iter().map(|e| e.name).collect()
        } else {
            vec![Vec::new()]
        };
        let mut entries = Vec::with_capacity(names.len());
        for name in names {
            let full = if name.is_empty() {
                path.to_vec()
            } else {
                let mut p = path.to_vec();
                if !p.ends_with(b"/") {
                    p.push(b'/');
                }
                p.extend_from_slice(&name);
                p
            };
            let meta = vol.symlink_metadata(&full)?;
            let target_of = (meta.file_type == FileType::Symlink)
                .then(|| vol.read_link(&full).ok())
                .flatten()
                .map(|t| String::from_utf8_lossy(&t).into_owned());
            entries.push(ListEntry {
                name: if name.is_empty() {
                    target.path.clone()
                } else {
                    String::from_utf8_lossy(&name).into_owned()
                },
                meta,
                target: target_of,
            });
        }
        Ok((slot, entries))
    }

    /// The EFI System Partitions firmware would look at: readable slots of
    /// the ESP type, else FAT volumes holding `/EFI`.
    pub fn esps(&self) -> Vec<&Slot> {
        let typed: Vec<&Slot> = self
            .slots
            .iter()
            .filter(|s| s.has_esp_type() && s.volume.is_some())
            .collect();
        if !typed.is_empty() {
            return typed;
        }
        self.slots.iter().filter(|s| s.holds_efi_dir()).collect()
    }
}
