//! Finding QEMU: the system emulator for a guest architecture and the
//! concrete, versioned machine type its aliases stand for (firmware
//! descriptors match `virt-*` / `pc-q35-*`, never the bare alias).

use bootproof_platform::Arch;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Why QEMU cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum QemuError {
    /// The emulator is not installed.
    #[error("{binary} not found on PATH (install qemu-system-arm for aarch64 guests, qemu-system-x86 for x86_64)")]
    NotFound {
        /// The binary looked for.
        binary: String,
    },
    /// The emulator ran but did not list the machine.
    #[error("{binary} does not offer machine `{machine}`: {detail}")]
    NoMachine {
        /// The binary.
        binary: String,
        /// The machine alias.
        machine: String,
        /// What it printed or why it failed.
        detail: String,
    },
}

/// Finds `name` on `PATH`.
pub fn find_binary(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// The QEMU to run for `arch`, and the concrete machine type behind its alias.
#[derive(Debug, Clone)]
pub struct Qemu {
    /// The emulator binary.
    pub binary: PathBuf,
    /// The alias (`virt`, `q35`).
    pub alias: String,
    /// The versioned machine it stands for (`virt-10.0`, `pc-q35-10.0`).
    pub machine: String,
}

impl Qemu {
    /// Locates the emulator and resolves its machine alias by asking it
    /// (`-machine help`, ~20 ms).
    pub fn locate(arch: Arch) -> Result<Qemu, QemuError> {
        let name = arch.info().qemu_binary;
        let alias = arch.info().qemu_machine;
        let binary = find_binary(name).ok_or_else(|| QemuError::NotFound {
            binary: name.into(),
        })?;
        let out = Command::new(&binary)
            .args(["-machine", "help"])
            .output()
            .map_err(|e| QemuError::NoMachine {
                binary: name.into(),
                machine: alias.into(),
                detail: e.to_string(),
            })?;
        let text = String::from_utf8_lossy(&out.stdout);
        let machine = concrete_machine(&text, alias).ok_or_else(|| QemuError::NoMachine {
            binary: name.into(),
            machine: alias.into(),
            detail: "not in `-machine help`".into(),
        })?;
        Ok(Qemu {
            binary,
            alias: alias.into(),
            machine,
        })
    }
}

impl Qemu {
    /// [`Qemu::locate`], remembered in `cache_dir` for as long as the
    /// emulator binary is the same file (path, size and modification time):
    /// spawning QEMU to ask costs ~20 ms per boot.
    pub fn locate_cached(arch: Arch, cache_dir: &Path) -> Result<Qemu, QemuError> {
        let name = arch.info().qemu_binary;
        let identity = find_binary(name).and_then(|b| {
            let m = std::fs::metadata(&b).ok()?;
            let mtime = m
                .modified()
                .ok()?
                .duration_since(std::time::UNIX_EPOCH)
                .ok()?;
            Some(format!("{}:{}:{}", b.display(), m.len(), mtime.as_nanos()))
        });
        let file = cache_dir.join(format!("qemu-{arch}.json"));
        if let (Some(id), Ok(text)) = (&identity, std::fs::read_to_string(&file)) {
            if let Ok(v) = serde_json::from_str::<serde_json::Value>(&text) {
                if v["identity"] == id.as_str() {
                    if let (Some(b), Some(m)) = (v["binary"].as_str(), v["machine"].as_str()) {
                        return Ok(Qemu {
                            binary: b.into(),
                            alias: arch.info().qemu_machine.into(),
                            machine: m.into(),
                        });
                    }
                }
            }
        }
        let q = Qemu::locate(arch)?;
        if let Some(id) = identity {
            let doc =
                serde_json::json!({ "identity": id, "binary": q.binary, "machine": q.machine });
            let _ = std::fs::create_dir_all(cache_dir);
            let tmp = file.with_extension(format!("tmp{}", std::process::id()));
            if std::fs::write(&tmp, doc.to_string()).is_ok() {
                let _ = std::fs::rename(&tmp, &file);
            }
        }
        Ok(q)
    }
}

/// Reads `-machine help` output: the line for `alias` says
/// `virt   QEMU 10.0 ARM Virtual Machine (alias of virt-10.0)`.
pub fn concrete_machine(help: &str, alias: &str) -> Option<String> {
    for line in help.lines() {
        let mut words = line.split_whitespace();
        if words.next() != Some(alias) {
            continue;
        }
        if let Some(rest) = line.split("(alias of ").nth(1) {
            return Some(rest.trim_end_matches(')').trim().to_string());
        }
        // An unversioned machine (no alias): the name is the machine.
        return Some(alias.to_string());
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn machine_alias_is_resolved_from_help_text() {
        let help = "Supported machines are:\n\
            virt-9.2             QEMU 9.2 ARM Virtual Machine\n\
            virt                 QEMU 10.0 ARM Virtual Machine (alias of virt-10.0)\n\
            virt-10.0            QEMU 10.0 ARM Virtual Machine\n";
        assert_eq!(concrete_machine(help, "virt").as_deref(), Some("virt-10.0"));
        let x86 = "q35                  Standard PC (Q35 + ICH9, 2009) (alias of pc-q35-10.0)\n";
        assert_eq!(concrete_machine(x86, "q35").as_deref(), Some("pc-q35-10.0"));
        assert_eq!(concrete_machine(x86, "virt"), None);
    }
}
