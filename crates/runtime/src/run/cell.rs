//! One cell of a run (image × kernel × variant): its verdict, how a boot
//! becomes a verdict, the run's exit status and counts, shard selection,
//! and the evidence directory.

use crate::exit;
use crate::launch::{outcome_words, VariantResult};
use bootproof_agent::Record;
use bootproof_platform::{Arch, Platform};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// A cell's verdict.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum CellStatus {
    /// The command exited with the expected status.
    Pass,
    /// The command's own verdict was negative.
    Fail,
    /// The guest never ran the command.
    BootFailure,
    /// The VM could not run.
    InfraError,
    /// Not run (another shard's, or interrupted).
    Skipped,
}

impl CellStatus {
    /// The JSON spelling (`boot-failure`).
    pub fn name(&self) -> &'static str {
        match self {
            CellStatus::Pass => "pass",
            CellStatus::Fail => "fail",
            CellStatus::BootFailure => "boot-failure",
            CellStatus::InfraError => "infra-error",
            CellStatus::Skipped => "skipped",
        }
    }
}

/// One cell's result (`bootproof.run/v1` `cells[]`).
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct Cell {
    /// `image / variant`, the id shards hash.
    pub id: String,
    /// Image name (the file name, or the matrix file's `name`).
    pub name: String,
    /// Image path.
    pub image: PathBuf,
    /// The image's architecture.
    pub arch: Arch,
    /// Which kernel: `image` (the image's own) or an extra kernel's name.
    pub kernel: String,
    /// The kernel booted.
    pub kernel_version: Option<String>,
    /// Variant name.
    pub variant: String,
    /// The platform.
    pub platform: Platform,
    /// Whether its failure fails the run (matrix file `required`).
    pub required: bool,
    /// Verdict.
    pub status: CellStatus,
    /// In words: the exit status, the stage, or the infra error.
    pub detail: String,
    /// The command's exit status.
    pub exit_code: Option<i32>,
    /// The signal that ended it.
    pub signal: Option<i32>,
    /// Killed at its timeout.
    pub timed_out: bool,
    /// Tail of its stdout.
    pub stdout: String,
    /// Tail of its stderr.
    pub stderr: String,
    /// Seconds the command ran.
    pub command_secs: Option<f64>,
    /// Seconds the whole cell took (all attempts).
    pub secs: f64,
    /// Boots tried.
    pub attempts: u32,
    /// Why earlier attempts could not run.
    pub infra_errors: Vec<String>,
    /// Where the evidence is.
    pub evidence: Option<PathBuf>,
    /// The last attempt's boot (records, stages, QEMU command line, firmware).
    pub run: Option<VariantResult>,
}

impl Cell {
    /// Takes the command's result from a finished boot's records: the
    /// verdict against `expect`, exit status, output tails and, in full
    /// mode, the kernel the agent saw.
    pub(crate) fn take_boot(&mut self, v: VariantResult, expect: i32) {
        let (status, detail) = judge(&v, expect);
        self.attempts += v.retried.len() as u32;
        self.infra_errors.extend(v.retried.iter().cloned());
        self.status = status;
        self.detail = detail;
        if let Some(Record::Command {
            exit_code,
            signal,
            timed_out,
            stdout,
            stderr,
            secs,
            ..
        }) = v
            .records
            .iter()
            .find(|r| matches!(r, Record::Command { .. }))
        {
            self.exit_code = *exit_code;
            self.signal = *signal;
            self.timed_out = *timed_out;
            self.stdout.clone_from(stdout);
            self.stderr.clone_from(stderr);
            self.command_secs = Some(*secs);
        }
        if self.kernel_version.is_none() {
            self.kernel_version = v.records.iter().find_map(|r| match r {
                Record::Hello { kernel, .. } => Some(kernel.clone()),
                _ => None,
            });
        }
        self.run = Some(v);
    }
}

/// The verdict from one finished boot.
pub fn judge(v: &VariantResult, expect: i32) -> (CellStatus, String) {
    let command = v.records.iter().find_map(|r| match r {
        Record::Command {
            exit_code,
            signal,
            timed_out,
            error,
            ..
        } => Some((*exit_code, *signal, *timed_out, error.clone())),
        _ => None,
    });
    match command {
        None => (
            CellStatus::BootFailure,
            format!(
                "the agent never reported a command result: {}",
                outcome_words(&v.boot.outcome)
            ),
        ),
        Some((_, _, _, Some(e))) => (
            CellStatus::BootFailure,
            format!("the agent could not run it: {e}"),
        ),
        Some((_, _, true, _)) => (CellStatus::Fail, "timed out and was killed".into()),
        Some((Some(code), _, _, _)) if code == expect => (CellStatus::Pass, format!("exit {code}")),
        Some((Some(code), _, _, _)) => {
            (CellStatus::Fail, format!("exit {code} (expected {expect})"))
        }
        Some((None, Some(sig), _, _)) => (CellStatus::Fail, format!("killed by signal {sig}")),
        Some((None, None, _, _)) => (CellStatus::Fail, "ended with no status".into()),
    }
}

/// What reports need of a cell: made from a live [`Cell`], or read back
/// from a `bootproof.run/v1` file (`report merge`).
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
pub struct CellView {
    /// `image / variant` (matches cells across shards).
    pub id: String,
    /// Image name.
    pub name: String,
    /// Variant name.
    pub variant: String,
    /// Verdict.
    pub status: CellStatus,
    /// In words.
    pub detail: String,
    /// Output tails.
    #[serde(default)]
    pub stdout: String,
    /// Output tails.
    #[serde(default)]
    pub stderr: String,
    /// The kernel booted.
    #[serde(default)]
    pub kernel_version: Option<String>,
    /// Counts for the exit status.
    #[serde(default = "required_default")]
    pub required: bool,
}

fn required_default() -> bool {
    true
}

impl From<&Cell> for CellView {
    fn from(c: &Cell) -> CellView {
        CellView {
            id: c.id.clone(),
            name: c.name.clone(),
            variant: c.variant.clone(),
            status: c.status.clone(),
            detail: c.detail.clone(),
            stdout: c.stdout.clone(),
            stderr: c.stderr.clone(),
            kernel_version: c.kernel_version.clone(),
            required: c.required,
        }
    }
}

/// The run's exit status from its cells: 1 a required cell failed or did
/// not boot, else 3 a required cell had an infra error, else 0.
pub fn exit_status(cells: &[CellView]) -> u8 {
    let required = |s: CellStatus| cells.iter().any(|c| c.required && c.status == s);
    if required(CellStatus::Fail) || required(CellStatus::BootFailure) {
        exit::FAIL
    } else if required(CellStatus::InfraError) {
        exit::INFRA
    } else {
        exit::OK
    }
}

/// Cells per status.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Summary {
    /// Passed.
    pub pass: usize,
    /// The command failed.
    pub fail: usize,
    /// The guest never ran it.
    pub boot_failure: usize,
    /// The VM could not run.
    pub infra_error: usize,
    /// Not run.
    pub skipped: usize,
}

/// Counts the cells per status.
pub fn summary(cells: &[CellView]) -> Summary {
    let count_of = |s: CellStatus| cells.iter().filter(|c| c.status == s).count();
    Summary {
        pass: count_of(CellStatus::Pass),
        fail: count_of(CellStatus::Fail),
        boot_failure: count_of(CellStatus::BootFailure),
        infra_error: count_of(CellStatus::InfraError),
        skipped: count_of(CellStatus::Skipped),
    }
}

/// One shard of a run: K of N (1-based).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    /// This shard (1..=n).
    pub k: u64,
    /// Shards in all.
    pub n: u64,
}

impl std::str::FromStr for Shard {
    type Err = crate::Error;
    fn from_str(s: &str) -> Result<Shard, crate::Error> {
        let bad = || {
            crate::Error::with_hint(
                format!("bad --shard `{s}`"),
                "write K/N with 1 <= K <= N, e.g. 2/4",
            )
        };
        let (k, n) = s.split_once('/').ok_or_else(bad)?;
        let (k, n): (u64, u64) = (k.parse().map_err(|_| bad())?, n.parse().map_err(|_| bad())?);
        if n == 0 || k == 0 || k > n {
            return Err(bad());
        }
        Ok(Shard { k, n })
    }
}

impl std::fmt::Display for Shard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.k, self.n)
    }
}

impl Shard {
    /// Whether the cell with this id is this shard's.
    pub fn has(&self, id: &str) -> bool {
        stable_hash(id) % self.n == self.k - 1
    }
}

/// FNV-1a, 64-bit: a hash that is the same on every machine and release
/// (std's hashers are not), for shards.
pub fn stable_hash(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// Writes one cell's evidence directory.
pub fn write_evidence(dir: &Path, cell: &Cell, accel: &serde_json::Value) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    std::fs::write(dir.join("stdout.txt"), &cell.stdout)?;
    std::fs::write(dir.join("stderr.txt"), &cell.stderr)?;
    if let Some(v) = &cell.run {
        let mut records = String::new();
        for r in &v.records {
            records.push_str(&serde_json::to_string(r).unwrap_or_default());
            records.push('\n');
        }
        std::fs::write(dir.join("records.jsonl"), records)?;
        std::fs::write(dir.join("qemu-cmdline.txt"), v.qemu.join("\n") + "\n")?;
    }
    let doc = serde_json::json!({ "cell": cell, "accel": accel });
    std::fs::write(
        dir.join("cell.json"),
        serde_json::to_vec_pretty(&doc).map_err(std::io::Error::other)?,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_partition_the_cells_stably() {
        let ids: Vec<String> = (0..200)
            .map(|i| format!("img{i}.raw / gic3 acpi-on pci"))
            .collect();
        let mut seen = vec![0; ids.len()];
        for k in 1..=4 {
            let shard = Shard { k, n: 4 };
            for (i, id) in ids.iter().enumerate() {
                if shard.has(id) {
                    seen[i] += 1;
                }
            }
        }
        assert!(
            seen.iter().all(|&n| n == 1),
            "every cell in exactly one shard"
        );
        // The hash is FNV-1a: fixed across machines and releases.
        assert_eq!(stable_hash(""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(stable_hash("a"), 0xaf63_dc4c_8601_ec8c);
        for bad in ["0/4", "5/4", "x", "1/0"] {
            assert!(bad.parse::<Shard>().is_err(), "{bad}");
        }
        assert_eq!("2/4".parse::<Shard>().unwrap(), Shard { k: 2, n: 4 });
    }

    #[test]
    fn exit_status_counts_required_cells_only() {
        let cell = |status, required| CellView {
            id: String::new(),
            name: String::new(),
            variant: String::new(),
            status,
            detail: String::new(),
            stdout: String::new(),
            stderr: String::new(),
            kernel_version: None,
            required,
        };
        assert_eq!(exit_status(&[cell(CellStatus::Pass, true)]), exit::OK);
        assert_eq!(exit_status(&[cell(CellStatus::Fail, false)]), exit::OK);
        assert_eq!(
            exit_status(&[
                cell(CellStatus::InfraError, true),
                cell(CellStatus::Pass, true)
            ]),
            exit::INFRA
        );
        assert_eq!(
            exit_status(&[
                cell(CellStatus::InfraError, true),
                cell(CellStatus::BootFailure, true)
            ]),
            exit::FAIL
        );
        let s = summary(&[
            cell(CellStatus::Skipped, true),
            cell(CellStatus::Pass, true),
        ]);
        assert_eq!((s.pass, s.skipped, s.fail), (1, 1, 0));
        assert_eq!(CellStatus::BootFailure.name(), "boot-failure");
    }
}
