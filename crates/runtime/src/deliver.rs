//! How bootproof's agent reaches a guest, for `verify` (and anything else
//! that boots the agent):
//!
//! - **agent mode**: an initramfs built in memory, the agent as `/init`
//!   plus the modules it loads, booted with the image's own kernel;
//! - **full mode**: the image boots normally (firmware, its boot chain, its
//!   init) and a seed installs the agent: a cloud-init NoCloud volume
//!   (`CIDATA`, read-only virtio disk) whose `runcmd` copies it in and runs
//!   it, or an Ignition config over fw_cfg that writes it and enables a unit.
//!
//! Either way the agent finds its configuration at
//! [`bootproof_agent::CONFIG_PATH`] and its nonce at
//! [`bootproof_agent::NONCE_PATH`].

use bootproof_agent::{AgentConfig, CONFIG_PATH, FULL_MODE_ARG, FULL_MODE_PATH, NONCE_PATH};
use bootproof_boot::initramfs::Initramfs;
use bootproof_boot::modules::Closure;
use bootproof_inspect::OpenedImage;
use bootproof_vm::seed::{self, SeedFile};
use serde::Serialize;
use std::path::{Path, PathBuf};

/// A fresh per-boot nonce (24 hex digits) that frames the agent's records.
pub fn nonce() -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    h.update(std::process::id().to_le_bytes());
    h.update(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos())
            .to_le_bytes(),
    );
    if let Ok(b) = std::fs::read("/proc/sys/kernel/random/uuid") {
        h.update(b);
    }
    h.finalize()[..12]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Agent mode: the initramfs (newc) with the agent as `/init`, its config
/// and nonce, the module closure under `/lib/modules/<version>`, and
/// `files` (path, contents; executable) such as `bootproof run --binary`.
pub fn agent_initramfs(
    agent: &[u8],
    closure: &Closure,
    version: &str,
    cfg: &AgentConfig,
    nonce: &str,
    files: &[(String, Vec<u8>)],
) -> Vec<u8> {
    let mut i = Initramfs::new();
    for d in ["proc", "sys", "dev", "run", "tmp"] {
        i.dir(d);
    }
    i.char_dev("dev/console", 5, 1);
    // When the kernel has no console (no driver for the UART), init starts
    // with fds 0-2 closed and Rust's runtime opens /dev/null for them
    // before main; without the node, it aborts, which for PID 1 becomes a
    // SIGSEGV and a kernel panic (found booting a kernel without PL011).
    i.char_dev("dev/null", 1, 3);
    i.file("init", agent, 0o755);
    i.file(NONCE_PATH, nonce.as_bytes(), 0o644);
    i.file(
        CONFIG_PATH,
        serde_json::to_string(cfg).unwrap_or_default().as_bytes(),
        0o644,
    );
    let mut list = String::new();
    for m in &closure.load {
        // The kernel takes decompressed images from init_module.
        let path = format!(
            "/lib/modules/{version}/{}",
            m.path
                .trim_end_matches(".xz")
                .trim_end_matches(".zst")
                .trim_end_matches(".gz")
        );
        i.file(&path, &m.data, 0o644);
        list.push_str(&path);
        list.push('\n');
    }
    i.file(bootproof_agent::MODULES_LIST, list.as_bytes(), 0o644);
    for (path, data) in files {
        i.file(path.trim_start_matches('/'), data, 0o755);
    }
    i.finish()
}

/// How full mode hands the agent to the image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum SeedKind {
    /// cloud-init NoCloud: a FAT volume labelled `CIDATA`.
    NoCloud,
    /// Ignition (CoreOS-style): a config in fw_cfg `opt/com.coreos/config`.
    Ignition,
}

impl SeedKind {
    /// Parses `--seed`; `auto` is `None`.
    pub fn parse(s: &str) -> Option<SeedKind> {
        match s {
            "nocloud" | "cloud-init" => Some(SeedKind::NoCloud),
            "ignition" => Some(SeedKind::Ignition),
            _ => None,
        }
    }

    /// For reports.
    pub fn describe(self) -> &'static str {
        match self {
            SeedKind::NoCloud => "cloud-init NoCloud seed (CIDATA volume)",
            SeedKind::Ignition => "Ignition config over fw_cfg",
        }
    }
}

/// Which seed the image can consume, judged from its files: cloud-init's
/// entry point, or Ignition's dracut module (CoreOS-style images run it
/// from the initramfs) — `None` when it has neither.
pub fn detect_seed(img: &OpenedImage) -> Option<SeedKind> {
    let has = |path: &str| {
        img.slots.iter().any(|s| {
            s.volume
                .as_ref()
                .is_some_and(|v| v.exists(path.as_bytes()).unwrap_or(false))
        })
    };
    if has("/usr/bin/cloud-init") {
        Some(SeedKind::NoCloud)
    } else if has("/usr/lib/dracut/modules.d/30ignition") || has("/usr/lib/ignition") {
        Some(SeedKind::Ignition)
    } else {
        None
    }
}

/// The NoCloud `user-data`: a cloud-config whose `runcmd` mounts the seed
/// volume, installs the agent, its config and nonce, and runs it.
fn cloud_config() -> String {
    format!(
        "#cloud-config
# Written by bootproof: install the agent from this volume and run it.
runcmd:
  - |
    set -e
    m=$(mktemp -d)
    mount -o ro LABEL=CIDATA \"$m\"
    mkdir -p {etc} {bin}
    cp \"$m\"/bootproof/nonce {nonce}
    cp \"$m\"/bootproof/config.json {config}
    cp \"$m\"/bootproof/agent {agent}
    chmod 0755 {agent}
    if [ -d \"$m\"/bootproof/files ]; then cp -r \"$m\"/bootproof/files/. /; fi
    umount \"$m\"
    exec {agent} {arg}
",
        etc = Path::new(CONFIG_PATH)
            .parent()
            .map_or("/etc".into(), |p| p.display().to_string()),
        bin = Path::new(FULL_MODE_PATH)
            .parent()
            .map_or("/usr/local/bin".into(), |p| p.display().to_string()),
        nonce = NONCE_PATH,
        config = CONFIG_PATH,
        agent = FULL_MODE_PATH,
        arg = FULL_MODE_ARG,
    )
}

/// The systemd unit Ignition enables: the agent once the system is up.
const IGNITION_UNIT: &str = "[Unit]
Description=bootproof agent (runtime checks, then power off)
After=multi-user.target

[Service]
Type=oneshot
ExecStart=/usr/local/bin/bootproof-agent --full
StandardOutput=journal+console

[Install]
WantedBy=multi-user.target
";

/// Writes the seed `boot` gives a cloud-init image that came without one
/// into `dir`: a NoCloud volume with an instance id and an empty
/// cloud-config. cloud-init's `ds-identify` finds it by its label and
/// stops there, instead of probing every cloud's metadata service in turn
/// (network timeouts of minutes on images whose datasource list allows
/// them); the image's own modules run as on any first boot.
pub fn write_empty_nocloud(dir: &Path) -> std::io::Result<PathBuf> {
    let file = |path: &str, data: &str| SeedFile {
        path: path.into(),
        data: data.as_bytes().to_vec(),
        mode: 0o644,
    };
    let disk = dir.join("seed-cidata.img");
    seed::write_nocloud(
        &disk,
        &[
            // Empty: a cloud-config of comments only draws a warning.
            file("user-data", ""),
            file(
                "meta-data",
                "# Written by bootproof boot: a datasource, no configuration.\ninstance-id: bootproof-boot\n",
            ),
        ],
    )?;
    Ok(disk)
}

/// What a full-mode VM gets attached.
#[derive(Debug, Default)]
pub struct SeedAttachment {
    /// A read-only disk (NoCloud).
    pub disk: Option<PathBuf>,
    /// fw_cfg blobs (Ignition).
    pub fw_cfg: Vec<(String, PathBuf)>,
}

/// Writes the seed for one boot into `dir`.
/// `files` (absolute guest paths and contents, e.g. `run --binary` under
/// [`bootproof_agent::BINARIES_DIR`]) travel with the seed.
pub fn write_seed(
    kind: SeedKind,
    dir: &Path,
    agent: &[u8],
    cfg: &AgentConfig,
    nonce: &str,
    files: &[(String, Vec<u8>)],
) -> std::io::Result<SeedAttachment> {
    let config = serde_json::to_vec(cfg).map_err(std::io::Error::other)?;
    match kind {
        SeedKind::NoCloud => {
            let file = |path: &str, data: Vec<u8>| SeedFile {
                path: path.into(),
                data,
                mode: 0o644,
            };
            let disk = dir.join("seed-cidata.img");
            // Extra files ride under `files/<their guest path>`; runcmd
            // copies that tree to /.
            let mut all = vec![
                file("user-data", cloud_config().into_bytes()),
                file(
                    "meta-data",
                    format!("instance-id: bootproof-{nonce}\nlocal-hostname: bootproof\n")
                        .into_bytes(),
                ),
                file("bootproof/agent", agent.to_vec()),
                file("bootproof/nonce", nonce.as_bytes().to_vec()),
                file("bootproof/config.json", config),
            ];
            for (path, data) in files {
                all.push(file(
                    &format!("bootproof/files/{}", path.trim_start_matches('/')),
                    data.clone(),
                ));
            }
            seed::write_nocloud(&disk, &all)?;
            Ok(SeedAttachment {
                disk: Some(disk),
                fw_cfg: Vec::new(),
            })
        }
        SeedKind::Ignition => {
            let file = |path: &str, data: Vec<u8>, mode| SeedFile {
                path: path.into(),
                data,
                mode,
            };
            let mut all = vec![
                file(FULL_MODE_PATH, agent.to_vec(), 0o755),
                file(NONCE_PATH, nonce.as_bytes().to_vec(), 0o644),
                file(CONFIG_PATH, config, 0o644),
            ];
            for (path, data) in files {
                all.push(file(path, data.clone(), 0o755));
            }
            let doc = seed::ignition_config(&all, &[("bootproof-agent.service", IGNITION_UNIT)]);
            let path = dir.join("ignition.json");
            std::fs::write(
                &path,
                serde_json::to_vec(&doc).map_err(std::io::Error::other)?,
            )?;
            Ok(SeedAttachment {
                disk: None,
                fw_cfg: vec![(seed::IGNITION_FW_CFG.into(), path)],
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cloud_config_installs_and_runs_the_agent() {
        let c = cloud_config();
        assert!(c.starts_with("#cloud-config\n"));
        assert!(c.contains("mount -o ro LABEL=CIDATA"));
        assert!(c.contains(&format!("exec {FULL_MODE_PATH} {FULL_MODE_ARG}")));
        assert!(IGNITION_UNIT.contains(&format!("ExecStart={FULL_MODE_PATH} {FULL_MODE_ARG}")));
    }
}
