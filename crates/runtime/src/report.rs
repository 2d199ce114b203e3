//! `report merge`: one report from the `bootproof.run/v1` files of a
//! sharded run (`run --shard K/N` on many machines), with the exit status
//! the whole run would have had. A cell that ran in one shard replaces its
//! `skipped` entries from the others; a cell that ran in two, a different
//! command or another schema is an error (the files are not one run's).

use crate::run::{exit_status, summary, CellStatus, CellView, Summary, RUN_SCHEMA};
use crate::{exit, Error};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::path::{Path, PathBuf};

/// What merging reads of a shard report.
#[derive(Deserialize)]
struct Shard {
    command: Vec<String>,
    cells: Vec<Value>,
}

/// A cell as read back: what reports need, and the whole cell as written.
#[derive(Debug, Clone)]
pub struct MergedCell {
    /// The typed view (id, status, output tails…).
    pub view: CellView,
    /// The cell exactly as its shard wrote it.
    pub raw: Value,
}

impl Serialize for MergedCell {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.raw.serialize(s)
    }
}

/// A merged cell is the run report's cell, as written.
impl schemars::JsonSchema for MergedCell {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "MergedCell".into()
    }
    fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        generator.subschema_for::<crate::run::Cell>()
    }
}

/// The merged report (`bootproof.run/v1` with `merged_from`).
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct MergedReport {
    /// The document's schema id, [`RUN_SCHEMA`].
    #[schemars(extend("const" = RUN_SCHEMA))]
    pub schema: &'static str,
    /// The command every shard ran.
    pub command: Vec<String>,
    /// The shard files.
    pub merged_from: Vec<PathBuf>,
    /// Every cell, the one that ran where one did.
    pub cells: Vec<MergedCell>,
    /// Cells per status.
    pub summary: Summary,
    /// The exit status is 0.
    pub passed: bool,
    /// Cells no shard ran.
    pub still_skipped: Vec<String>,
    /// The exit status the whole run would have had.
    #[serde(skip)]
    pub exit_code: u8,
}

impl MergedReport {
    /// The typed views of the cells.
    pub fn views(&self) -> Vec<CellView> {
        self.cells.iter().map(|c| c.view.clone()).collect()
    }
}

fn not_a_run(path: &Path, what: impl std::fmt::Display) -> Error {
    Error::with_hint(
        format!("{}: {what}", path.display()),
        "pass `bootproof run --json` outputs",
    )
}

/// Reads one shard file.
fn read_shard(path: &Path) -> Result<Shard, Error> {
    let text = std::fs::read(path).map_err(|e| not_a_run(path, e))?;
    let doc: Value =
        serde_json::from_slice(&text).map_err(|e| not_a_run(path, format!("not JSON: {e}")))?;
    if doc["schema"] != RUN_SCHEMA {
        return Err(not_a_run(
            path,
            format!("schema {} is not {RUN_SCHEMA}", doc["schema"]),
        ));
    }
    serde_json::from_value(doc).map_err(|e| not_a_run(path, format!("not a run report: {e}")))
}

/// Merges shard reports.
pub fn merge(files: &[PathBuf]) -> Result<MergedReport, Error> {
    let mut command: Option<Vec<String>> = None;
    let mut cells: Vec<MergedCell> = Vec::new();
    for f in files {
        let shard = read_shard(f)?;
        match &command {
            None => command = Some(shard.command.clone()),
            Some(c) if *c != shard.command => {
                return Err(Error::with_hint(
                    format!(
                        "{}: a different command ({} vs {})",
                        f.display(),
                        serde_json::to_string(&shard.command).unwrap_or_default(),
                        serde_json::to_string(c).unwrap_or_default()
                    ),
                    "merge the shards of one run",
                ))
            }
            Some(_) => {}
        }
        for raw in shard.cells {
            let view: CellView = serde_json::from_value(raw.clone()).map_err(|e| {
                Error::with_hint(
                    format!("a cell does not parse: {e}"),
                    "pass `bootproof run --json` outputs",
                )
            })?;
            let ran = view.status != CellStatus::Skipped;
            match cells.iter_mut().find(|c| c.view.id == view.id) {
                None => cells.push(MergedCell { view, raw }),
                Some(have) => match (have.view.status != CellStatus::Skipped, ran) {
                    (true, true) => {
                        return Err(Error::with_hint(
                            format!("cell {:?} ran in two of the reports", view.id),
                            "merge the shards of one run (each cell runs in exactly one shard)",
                        ))
                    }
                    (false, true) => *have = MergedCell { view, raw },
                    _ => {}
                },
            }
        }
    }
    let views: Vec<CellView> = cells.iter().map(|c| c.view.clone()).collect();
    let exit_code = exit_status(&views);
    Ok(MergedReport {
        schema: RUN_SCHEMA,
        command: command.unwrap_or_default(),
        merged_from: files.to_vec(),
        summary: summary(&views),
        passed: exit_code == exit::OK,
        still_skipped: views
            .iter()
            .filter(|c| c.status == CellStatus::Skipped)
            .map(|c| c.id.clone())
            .collect(),
        cells,
        exit_code,
    })
}
