//! The agent stage: what bootproof's in-guest agent reports and how.
//!
//! The agent (`src/bin/agent.rs`) is a static binary that runs as `/init`
//! of an initramfs bootproof builds (agent mode), or, with `--full`, as a
//! process the image's own init starts after a normal boot (full mode: a
//! cloud-init or Ignition seed installs it; see [`FULL_MODE_PATH`]). It writes one record per line on the
//! console, framed as `@@bootproof:<nonce>:<json>`. The nonce is written
//! into the initramfs (never on the kernel command line, which the kernel
//! echoes), so kernel or firmware noise cannot forge a record. This module
//! holds the record types both sides use and the host-side parser, which
//! bounds what it accepts. When the VM has a virtio-serial port named
//! [`PORT_NAME`], every record after the modules are loaded also goes
//! there, a channel no console noise reaches.
#![forbid(unsafe_code)]

pub mod catalog;

pub use bootproof_platform::{Arch, Transport};
use serde::{Deserialize, Serialize};

/// Protocol version written in every record.
pub const PROTOCOL: u32 = 1;
/// Where the agent finds its nonce inside the initramfs.
pub const NONCE_PATH: &str = "/etc/bootproof/nonce";
/// Where the agent finds its configuration inside the initramfs.
pub const CONFIG_PATH: &str = "/etc/bootproof/config.json";
/// Where a seed installs the agent in full mode (the config and nonce go
/// to [`CONFIG_PATH`] and [`NONCE_PATH`], as in the initramfs).
pub const FULL_MODE_PATH: &str = "/usr/local/bin/bootproof-agent";
/// The argument that tells the agent it is not PID 1 (full mode): it
/// mounts nothing, loads no modules, and writes records to `/dev/console`.
pub const FULL_MODE_ARG: &str = "--full";
/// Where the agent finds the modules to load, in order, one path per line.
pub const MODULES_LIST: &str = "/etc/bootproof/modules";
/// The virtio-serial port name the agent writes its records to as well
/// (the console stays the fallback).
pub const PORT_NAME: &str = "org.bootproof.agent.0";
/// Longest record line the host accepts.
pub const MAX_RECORD: usize = 256 * 1024;
/// Most records the host keeps from one guest.
pub const MAX_RECORDS: usize = 4096;
/// Most record bytes (framed JSON) the host keeps from one guest: without
/// it, [`MAX_RECORDS`] records of [`MAX_RECORD`] bytes each could hold a
/// gigabyte. A real agent sends a few kilobytes.
pub const MAX_RECORD_BYTES: usize = 8 << 20;

/// What the host tells the agent (the platform it asked QEMU for).
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
pub struct AgentConfig {
    /// The guest's architecture (`aarch64`, `x86_64` in the JSON).
    pub arch: Arch,
    /// vCPUs the VM has.
    pub cpus: u32,
    /// GIC version requested (aarch64).
    pub gic: u8,
    /// ACPI requested.
    pub acpi: bool,
    /// The virtio transport requested (`pci`, `mmio`).
    pub transport: Transport,
    /// riscv64: AIA (APLIC, IMSIC) requested instead of the PLIC.
    #[serde(default)]
    pub aia: bool,
    /// Write this value to bootproof's persistence variable (first boot of
    /// the persistence check).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub persist_write: Option<String>,
    /// Expect this value in bootproof's persistence variable (second boot).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub persist_expect: Option<String>,
    /// Wait for the host to hotplug a virtio disk into a PCIe root port.
    #[serde(default)]
    pub hotplug: bool,
    /// The VM has the [`PORT_NAME`] virtio-serial port: not finding it fails.
    #[serde(default)]
    pub virtio_serial: bool,
    /// Run the user's command in the image's root instead of the checks
    /// (`bootproof run`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run: Option<RunSpec>,
}

impl AgentConfig {
    /// The configuration an agent assumes when the host gave none it can
    /// read: the architecture it was built for, no platform expectations
    /// (so checks that need one compare against nothing and fail).
    pub fn unconfigured() -> AgentConfig {
        AgentConfig {
            arch: Arch::host().unwrap_or(Arch::X86_64),
            cpus: 0,
            gic: 0,
            acpi: false,
            transport: Transport::Pci,
            aia: false,
            persist_write: None,
            persist_expect: None,
            hotplug: false,
            virtio_serial: false,
            run: None,
        }
    }
}

/// A command to run as root in the image's own root filesystem: the agent
/// mounts it read-only, puts a tmpfs overlay on it (writes go nowhere
/// near the image), mounts /proc, /sys, /dev, /run and /tmp in it, chroots
/// and executes `argv` directly (no shell parses it).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct RunSpec {
    /// The command and its arguments, exactly as given.
    pub argv: Vec<String>,
    /// Environment beyond `PATH`, `HOME` and `TERM`.
    pub env: Vec<(String, String)>,
    /// The root filesystem's block device in the guest: a name (`vda2`),
    /// or `serial:NAME` for the virtio disk whose serial is NAME (a window
    /// of the boot disk, [`ROOT_WINDOW_SERIAL`]).
    pub root_device: String,
    /// Its filesystem type for mount(2) (`ext4`, `xfs`, `btrfs`).
    pub root_fstype: String,
    /// Files shipped in the initramfs under [`BINARIES_DIR`], by name;
    /// each is copied to `/run/bootproof/bin/<name>` inside the root.
    pub binaries: Vec<String>,
    /// Seconds the command may run before it is killed.
    pub timeout_secs: u64,
}

/// The virtio serial of the read-only disk that is a window of the boot
/// disk holding the image's root (an LVM2 logical volume's extents): the
/// guest reads the volume with no device mapper.
pub const ROOT_WINDOW_SERIAL: &str = "bootproof-root";

/// Where shipped binaries are in the agent's initramfs.
pub const BINARIES_DIR: &str = "/bootproof/bin";
/// Where shipped binaries appear inside the image's root.
pub const BINARIES_IN_ROOT: &str = "/run/bootproof/bin";
/// The environment variable that names a shipped binary's path inside the
/// guest: `BOOTPROOF_BIN_` and the file name upper-cased, every other
/// character `_` (`probe.sh` → `BOOTPROOF_BIN_PROBE_SH`). The host uses it
/// to refuse two files that would collide.
pub fn binary_env_var(name: &str) -> String {
    let suffix: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect();
    format!("BOOTPROOF_BIN_{suffix}")
}

/// Bytes of stdout and of stderr the agent keeps (the tail) and reports.
pub const MAX_OUTPUT: usize = 16 * 1024;
/// The argument with which the agent re-executes itself to enter the
/// root: `--chroot-exec ROOT -- ARGV…` (chroot(2) then execvp, no unsafe).
pub const CHROOT_EXEC_ARG: &str = "--chroot-exec";

/// The name of the variable the persistence check writes, under
/// [`VENDOR_GUID`].
pub const PERSIST_VARIABLE: &str = "BootproofPersist";
/// bootproof's vendor GUID for its EFI variables (firmware refuses unknown
/// names under the EFI global-variable GUID).
pub const VENDOR_GUID: &str = "b0075eed-6b2a-4c1e-9f3d-2e7a5c4b1d90";

/// A check's result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Met.
    Pass,
    /// Not met.
    Fail,
    /// Not applicable here, with the reason in the evidence.
    Skip,
}

/// One record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum Record {
    /// First record: who is reporting.
    Hello {
        /// Protocol version.
        v: u32,
        /// Agent version.
        agent: String,
        /// `uname -r`.
        kernel: String,
        /// `uname -m`.
        machine: String,
    },
    /// A module the agent loaded (or could not).
    Module {
        /// Path inside the initramfs.
        path: String,
        /// Error, if loading failed.
        #[serde(skip_serializing_if = "Option::is_none", default)]
        error: Option<String>,
    },
    /// One runtime check.
    Check {
        /// Stable id (`uefi.booted`, `acpi.checksums`, …).
        id: String,
        /// Result.
        status: Status,
        /// What was seen.
        evidence: String,
    },
    /// The user's command ran (or could not): `bootproof run`.
    Command {
        /// Exit status, when it exited.
        #[serde(skip_serializing_if = "Option::is_none", default)]
        exit_code: Option<i32>,
        /// The signal that ended it, when one did.
        #[serde(skip_serializing_if = "Option::is_none", default)]
        signal: Option<i32>,
        /// Killed at the timeout.
        #[serde(default)]
        timed_out: bool,
        /// The last [`MAX_OUTPUT`] bytes of stdout (lossy UTF-8).
        stdout: String,
        /// The last [`MAX_OUTPUT`] bytes of stderr.
        stderr: String,
        /// Total bytes written to stdout and stderr.
        stdout_bytes: u64,
        /// Total bytes written to stderr.
        stderr_bytes: u64,
        /// Seconds it ran.
        secs: f64,
        /// How the root was set up, or why it could not be (then the
        /// command did not run and `exit_code` is absent).
        root: String,
        /// Set when the command could not be started or the root not set up.
        #[serde(skip_serializing_if = "Option::is_none", default)]
        error: Option<String>,
    },
    /// The agent waits for the host to act (`hotplug`: add a disk now).
    Waiting {
        /// What for.
        what: String,
    },
    /// Last record: the agent is about to power the guest off.
    Done {
        /// Checks passed.
        passed: u32,
        /// Checks failed.
        failed: u32,
    },
}

/// The framing prefix for `nonce`.
pub fn prefix(nonce: &str) -> String {
    format!("@@bootproof:{nonce}:")
}

/// Frames a record as a console line (with the trailing newline).
pub fn frame(nonce: &str, record: &Record) -> String {
    let json = serde_json::to_string(record).unwrap_or_else(|_| "{}".into());
    format!("{}{json}\n", prefix(nonce))
}

/// Collects the records of one guest from its console, whatever the
/// chunking; lines without the nonce are ignored, oversized ones dropped.
#[derive(Debug)]
pub struct RecordReader {
    prefix: Vec<u8>,
    line: Vec<u8>,
    overflow: bool,
    records: Vec<Record>,
    /// Bytes of the records kept.
    kept: usize,
    /// Lines that had the nonce but did not parse.
    pub malformed: usize,
    /// Records dropped because the limits were reached.
    pub dropped: usize,
}

impl RecordReader {
    /// A reader for records carrying `nonce`.
    pub fn new(nonce: &str) -> RecordReader {
        RecordReader {
            prefix: prefix(nonce).into_bytes(),
            line: Vec::new(),
            overflow: false,
            records: Vec::new(),
            kept: 0,
            malformed: 0,
            dropped: 0,
        }
    }

    /// Feeds console bytes.
    pub fn feed(&mut self, bytes: &[u8]) {
        for &b in bytes {
            if b == b'\n' || b == b'\r' {
                if !self.overflow {
                    self.take_line();
                }
                self.line.clear();
                self.overflow = false;
            } else if self.line.len() < MAX_RECORD {
                self.line.push(b);
            } else {
                self.overflow = true;
            }
        }
    }

    fn take_line(&mut self) {
        // The record may follow other output on the same line (a kernel
        // message interleaved); the prefix is searched, not anchored.
        let Some(at) = self
            .line
            .windows(self.prefix.len())
            .position(|w| w == self.prefix.as_slice())
        else {
            return;
        };
        let json = &self.line[at + self.prefix.len()..];
        if self.records.len() >= MAX_RECORDS || self.kept + json.len() > MAX_RECORD_BYTES {
            self.dropped += 1;
            return;
        }
        match serde_json::from_slice::<Record>(json) {
            Ok(r) => {
                self.kept += json.len();
                self.records.push(r);
            }
            Err(_) => self.malformed += 1,
        }
    }

    /// The records so far.
    pub fn records(&self) -> &[Record] {
        &self.records
    }

    /// Whether the agent said it finished.
    pub fn done(&self) -> bool {
        self.records
            .iter()
            .any(|r| matches!(r, Record::Done { .. }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_noise_is_ignored() {
        let n = "5eed";
        let check = Record::Check {
            id: "uefi.booted".into(),
            status: Status::Pass,
            evidence: "/sys/firmware/efi exists".into(),
        };
        let mut console = String::new();
        console.push_str("[    1.0] Linux version 6.1\r\n");
        console.push_str(&frame(n, &check));
        console.push_str("@@bootproof:other-nonce:{\"type\":\"done\",\"passed\":9,\"failed\":0}\n");
        console.push_str("[    2.0] noise ");
        console.push_str(&frame(
            n,
            &Record::Done {
                passed: 1,
                failed: 0,
            },
        ));
        console.push_str(&format!("{}{{not json\n", prefix(n)));
        for chunk in [1, 5, 4096] {
            let mut r = RecordReader::new(n);
            for piece in console.as_bytes().chunks(chunk) {
                r.feed(piece);
            }
            assert_eq!(
                r.records(),
                &[
                    check.clone(),
                    Record::Done {
                        passed: 1,
                        failed: 0
                    }
                ]
            );
            assert!(r.done());
            assert_eq!(r.malformed, 1);
        }
    }

    #[test]
    fn binary_env_vars() {
        assert_eq!(binary_env_var("probe.sh"), "BOOTPROOF_BIN_PROBE_SH");
        assert_eq!(binary_env_var("bpf-loader"), "BOOTPROOF_BIN_BPF_LOADER");
    }

    #[test]
    fn hostile_lengths_are_bounded() {
        let mut r = RecordReader::new("n");
        r.feed(&vec![b'x'; MAX_RECORD * 3]);
        r.feed(b"\n");
        for _ in 0..(MAX_RECORDS + 10) {
            r.feed(
                frame(
                    "n",
                    &Record::Done {
                        passed: 0,
                        failed: 0,
                    },
                )
                .as_bytes(),
            );
        }
        assert_eq!(r.records().len(), MAX_RECORDS);
        assert_eq!(r.dropped, 10);
    }

    #[test]
    fn kept_record_bytes_are_bounded() {
        let mut r = RecordReader::new("n");
        let big = Record::Check {
            id: "x.y".into(),
            status: Status::Pass,
            evidence: "e".repeat(MAX_RECORD - 200),
        };
        let line = frame("n", &big);
        for _ in 0..200 {
            r.feed(line.as_bytes());
        }
        let kept: usize = r
            .records()
            .iter()
            .map(|x| serde_json::to_string(x).unwrap().len())
            .sum();
        assert!(kept <= MAX_RECORD_BYTES, "{kept}");
        assert!(r.dropped > 0 && !r.records().is_empty());
    }
}
