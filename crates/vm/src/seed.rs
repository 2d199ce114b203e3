//! Seeds: how files reach a guest that boots its own init (bootproof's
//! full mode). Two kinds, as cloud images expect them:
//!
//! - a cloud-init **NoCloud** volume: a FAT filesystem labelled `CIDATA`
//!   holding `user-data`, `meta-data` and any other files, attached as a
//!   read-only virtio disk ([`write_nocloud`]);
//! - an **Ignition** config (CoreOS-style images), handed to the guest
//!   through QEMU's fw_cfg as `opt/com.coreos/config` ([`ignition_config`],
//!   [`IGNITION_FW_CFG`]).
//!
//! This module only writes bytes; what the files say (the cloud-config,
//! the units) is the caller's.

use std::io::{Seek, Write};
use std::path::Path;

/// The fw_cfg name Ignition reads its config from on QEMU.
pub const IGNITION_FW_CFG: &str = "opt/com.coreos/config";

/// The Ignition config spec version [`ignition_config`] writes (3.x is
/// read by every Ignition since 2020).
pub const IGNITION_VERSION: &str = "3.3.0";

/// One file to put in a seed.
#[derive(Debug, Clone)]
pub struct SeedFile {
    /// Path inside the volume (`user-data`, `bootproof/agent`) or, for
    /// Ignition, the absolute path in the guest.
    pub path: String,
    /// Contents.
    pub data: Vec<u8>,
    /// Unix mode (Ignition only; FAT has none).
    pub mode: u32,
}

/// Writes a NoCloud seed volume to `out`: FAT labelled `CIDATA`, sized to
/// its files, with each file at its path (directories created). cloud-init
/// finds it by the label (`ds-identify`, then `blkid`).
pub fn write_nocloud(out: &Path, files: &[SeedFile]) -> std::io::Result<()> {
    // Room for the files, one cluster of slack each, and FAT metadata;
    // at least 4 MiB (FAT12/16 pick small clusters there).
    let payload: u64 = files.iter().map(|f| f.data.len() as u64 + 4096).sum();
    let size = (payload + payload / 8 + (2 << 20)).max(4 << 20);
    let size = size.div_ceil(1 << 20) << 20;
    let mut disk = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(out)?;
    disk.set_len(size)?;
    fatfs::format_volume(
        &mut disk,
        fatfs::FormatVolumeOptions::new().volume_label(*b"CIDATA     "),
    )?;
    disk.rewind()?;
    let fs = fatfs::FileSystem::new(&mut disk, fatfs::FsOptions::new())?;
    let root = fs.root_dir();
    for f in files {
        let path = f.path.trim_start_matches('/');
        let mut parent = String::new();
        let mut parts: Vec<&str> = path.split('/').collect();
        parts.pop();
        for part in parts {
            if !parent.is_empty() {
                parent.push('/');
            }
            parent.push_str(part);
            root.create_dir(&parent)?;
        }
        let mut file = root.create_file(path)?;
        file.truncate()?;
        file.write_all(&f.data)?;
        file.flush()?;
    }
    drop(root);
    fs.unmount()?;
    disk.sync_all()
}

/// An Ignition config that writes `files` and enables `units` (name,
/// unit text); units listed are enabled, so each should carry an
/// `[Install]` section.
pub fn ignition_config(files: &[SeedFile], units: &[(&str, &str)]) -> serde_json::Value {
    let files: Vec<serde_json::Value> = files
        .iter()
        .map(|f| {
            serde_json::json!({
                "path": f.path,
                "mode": f.mode,
                "overwrite": true,
                "contents": { "source": format!("data:;base64,{}", base64(&f.data)) },
            })
        })
        .collect();
    let units: Vec<serde_json::Value> = units
        .iter()
        .map(|(name, text)| serde_json::json!({ "name": name, "enabled": true, "contents": text }))
        .collect();
    serde_json::json!({
        "ignition": { "version": IGNITION_VERSION },
        "storage": { "files": files },
        "systemd": { "units": units },
    })
}

/// Standard base64 with padding (RFC 4648 §4), as data URLs carry it.
fn base64(data: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(data)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_rfc_4648_vectors() {
        for (raw, enc) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(raw.as_bytes()), enc);
        }
    }

    #[test]
    fn ignition_config_shape() {
        let c = ignition_config(
            &[SeedFile {
                path: "/run/x".into(),
                data: b"hi".to_vec(),
                mode: 0o755,
            }],
            &[("a.service", "[Service]\n")],
        );
        assert_eq!(c["ignition"]["version"], IGNITION_VERSION);
        assert_eq!(c["storage"]["files"][0]["mode"], 0o755);
        assert_eq!(
            c["storage"]["files"][0]["contents"]["source"],
            "data:;base64,aGk="
        );
        assert_eq!(c["systemd"]["units"][0]["enabled"], true);
    }
}
