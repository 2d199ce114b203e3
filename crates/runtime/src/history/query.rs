//! Reading the history: the runs (`bootproof history`) and two runs
//! compared cell by cell (`bootproof compare`).

use super::open_db;
use crate::Error;
use rusqlite::{params, Connection};
use serde::Serialize;

/// One run as `history` lists it.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct RunSummary {
    /// Run id (for `compare`).
    pub id: i64,
    /// When it started (UTC).
    pub started: String,
    /// How long it took.
    pub secs: f64,
    /// The command.
    pub command: Vec<String>,
    /// `--shard`, if any.
    pub shard: Option<String>,
    /// Its exit status.
    pub exit_code: i64,
    /// Cells per status.
    pub counts: std::collections::BTreeMap<String, u64>,
}

/// Schema id of `history --json`.
pub const HISTORY_SCHEMA: &str = "bootproof.history/v1";

/// What `bootproof history --json` prints (`bootproof.history/v1`).
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct HistoryDocument {
    /// The document's schema id, [`HISTORY_SCHEMA`].
    #[schemars(extend("const" = HISTORY_SCHEMA))]
    pub schema: &'static str,
    /// The database read.
    pub database: std::path::PathBuf,
    /// The newest runs, newest first.
    pub runs: Vec<RunSummary>,
}

/// The newest `limit` runs as `history --json` prints them.
pub fn history_document(limit: usize) -> Result<HistoryDocument, Error> {
    Ok(HistoryDocument {
        schema: HISTORY_SCHEMA,
        database: super::db_path(),
        runs: list_runs(limit)?,
    })
}

/// Runs whose cells [`cell_costs`] reads: the newest this many.
const COST_RUNS: i64 = 50;

/// Each cell's seconds in the newest recorded run that booted it (of the
/// last [`COST_RUNS`] runs), by cell id; empty without a history. What
/// `run` orders its cells by, longest first. Never creates the database.
pub fn cell_costs() -> std::collections::HashMap<String, f64> {
    let mut costs = std::collections::HashMap::new();
    if !super::db_path().exists() {
        return costs;
    }
    let Ok(db) = open_db() else { return costs };
    let Ok(mut stmt) = db.prepare(
        "SELECT cell_id, secs FROM cells WHERE attempts > 0 AND status != 'skipped'
         AND run_id > (SELECT COALESCE(MAX(id), 0) FROM runs) - ?1 ORDER BY run_id",
    ) else {
        return costs;
    };
    let rows = stmt.query_map(params![COST_RUNS], |r| {
        Ok((r.get::<_, String>(0)?, r.get::<_, f64>(1)?))
    });
    for (id, secs) in rows.into_iter().flatten().flatten() {
        costs.insert(id, secs); // later runs replace earlier ones
    }
    costs
}

/// The newest `limit` runs, newest first (`bootproof history`).
pub fn list_runs(limit: usize) -> Result<Vec<RunSummary>, Error> {
    let db = open_db()?;
    let err = |e: rusqlite::Error| Error::with_hint(format!("reading the history: {e}"), "");
    let mut stmt = db
        .prepare("SELECT id, started, secs, command, shard, exit_code FROM runs ORDER BY id DESC LIMIT ?1")
        .map_err(err)?;
    let rows = stmt
        .query_map(params![limit as i64], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, f64>(2)?,
                r.get::<_, String>(3)?,
                r.get::<_, Option<String>>(4)?,
                r.get::<_, i64>(5)?,
            ))
        })
        .map_err(err)?;
    let mut runs = Vec::new();
    for row in rows {
        let (id, started, secs, command, shard, exit_code) = row.map_err(err)?;
        let mut counts = std::collections::BTreeMap::new();
        let mut cs = db
            .prepare("SELECT status, COUNT(*) FROM cells WHERE run_id = ?1 GROUP BY status")
            .map_err(err)?;
        for c in cs
            .query_map(params![id], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?))
            })
            .map_err(err)?
        {
            let (s, n) = c.map_err(err)?;
            counts.insert(s, u64::try_from(n).unwrap_or(0));
        }
        runs.push(RunSummary {
            id,
            started,
            secs,
            command: serde_json::from_str(&command).unwrap_or_default(),
            shard,
            exit_code,
            counts,
        });
    }
    Ok(runs)
}

/// Resolves `latest`, `latest~N` or a number to a run id.
fn resolve_run(db: &Connection, spec: &str) -> Result<i64, Error> {
    let bad = || {
        Error::with_hint(
            format!("no run `{spec}` in the history"),
            "`bootproof history` lists run ids; `latest` and `latest~1` name the newest ones",
        )
    };
    let back = match spec {
        "latest" => Some(0),
        s => s
            .strip_prefix("latest~")
            .map(|n| n.parse::<i64>().map_err(|_| bad()))
            .transpose()?,
    };
    match back {
        Some(n) => db
            .query_row(
                "SELECT id FROM runs ORDER BY id DESC LIMIT 1 OFFSET ?1",
                params![n],
                |r| r.get(0),
            )
            .map_err(|_| bad()),
        None => {
            let id: i64 = spec.parse().map_err(|_| bad())?;
            db.query_row("SELECT id FROM runs WHERE id = ?1", params![id], |r| {
                r.get(0)
            })
            .map_err(|_| bad())
        }
    }
}

/// One cell's outcome in a recorded run.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct Recorded {
    /// Its status (`pass`, `fail`, `boot-failure`, `infra-error`, `skipped`).
    pub status: String,
    /// In words.
    pub detail: String,
    /// The kernel booted.
    pub kernel_version: Option<String>,
}

fn cells_of(db: &Connection, run: i64) -> Result<Vec<(String, Recorded)>, Error> {
    let err = |e: rusqlite::Error| Error::with_hint(format!("reading the history: {e}"), "");
    let mut stmt = db
        .prepare("SELECT cell_id, status, detail, kernel_version FROM cells WHERE run_id = ?1 ORDER BY rowid")
        .map_err(err)?;
    let rows = stmt
        .query_map(params![run], |r| {
            Ok((
                r.get::<_, String>(0)?,
                Recorded {
                    status: r.get(1)?,
                    detail: r.get(2)?,
                    kernel_version: r.get(3)?,
                },
            ))
        })
        .map_err(err)?;
    rows.collect::<Result<Vec<_>, _>>().map_err(err)
}

/// How a cell changed between two runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum ChangeKind {
    /// Passed before; failed or did not boot after.
    Regressed,
    /// Failed or did not boot before; passed after.
    Improved,
    /// To or from infra-error/skipped: no verdict to compare.
    NoVerdict,
    /// Only in the later run.
    Appeared,
    /// Only in the earlier run.
    Disappeared,
}

/// One changed cell.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct Change {
    /// The cell id (`image / variant`).
    pub cell: String,
    /// How it changed.
    pub change: ChangeKind,
    /// Its outcome in the earlier run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub before: Option<Recorded>,
    /// Its outcome in the later run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub after: Option<Recorded>,
}

/// Two runs compared cell by cell (`bootproof.compare/v1`).
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct Comparison {
    /// The document's schema id, [`COMPARE_SCHEMA`].
    #[schemars(extend("const" = COMPARE_SCHEMA))]
    pub schema: &'static str,
    /// The earlier run's id.
    pub before: i64,
    /// The later run's id.
    pub after: i64,
    /// Changed cells, in the earlier run's order, then appeared ones.
    pub changes: Vec<Change>,
    /// Cells with the same status in both.
    pub unchanged: usize,
    /// Cells that regressed.
    pub regressed: usize,
}

/// The `schema` of a [`Comparison`].
pub const COMPARE_SCHEMA: &str = "bootproof.compare/v1";

/// Compares two recorded runs (ids, `latest` or `latest~N`).
pub fn compare_runs(a: &str, b: &str) -> Result<Comparison, Error> {
    let db = open_db()?;
    let (ra, rb) = (resolve_run(&db, a)?, resolve_run(&db, b)?);
    let (ca, cb) = (cells_of(&db, ra)?, cells_of(&db, rb)?);
    Ok(diff(ra, rb, &ca, &cb))
}

/// The changes from `ca` to `cb`.
fn diff(ra: i64, rb: i64, ca: &[(String, Recorded)], cb: &[(String, Recorded)]) -> Comparison {
    let verdict = |s: &str| matches!(s, "pass" | "fail" | "boot-failure");
    let mut changes = Vec::new();
    let mut unchanged = 0usize;
    for (id, before) in ca {
        let change = |change, after: Option<&Recorded>| Change {
            cell: id.clone(),
            change,
            before: Some(before.clone()),
            after: after.cloned(),
        };
        match cb.iter().find(|(i, _)| i == id) {
            None => changes.push(change(ChangeKind::Disappeared, None)),
            Some((_, after)) if before.status == after.status => unchanged += 1,
            Some((_, after)) => {
                let kind = if before.status == "pass" && verdict(&after.status) {
                    ChangeKind::Regressed
                } else if after.status == "pass" && verdict(&before.status) {
                    ChangeKind::Improved
                } else {
                    ChangeKind::NoVerdict
                };
                changes.push(change(kind, Some(after)));
            }
        }
    }
    for (id, after) in cb {
        if !ca.iter().any(|(i, _)| i == id) {
            changes.push(Change {
                cell: id.clone(),
                change: ChangeKind::Appeared,
                before: None,
                after: Some(after.clone()),
            });
        }
    }
    let regressed = changes
        .iter()
        .filter(|c| c.change == ChangeKind::Regressed)
        .count();
    Comparison {
        schema: COMPARE_SCHEMA,
        before: ra,
        after: rb,
        changes,
        unchanged,
        regressed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn diff_names_regressions_and_ignores_no_verdicts() {
        let r = |status: &str| Recorded {
            status: status.into(),
            detail: String::new(),
            kernel_version: None,
        };
        let before = vec![
            ("a".to_string(), r("pass")),
            ("b".to_string(), r("fail")),
            ("c".to_string(), r("pass")),
            ("d".to_string(), r("pass")),
            ("gone".to_string(), r("pass")),
        ];
        let after = vec![
            ("a".to_string(), r("boot-failure")),
            ("b".to_string(), r("pass")),
            ("c".to_string(), r("infra-error")),
            ("d".to_string(), r("pass")),
            ("new".to_string(), r("fail")),
        ];
        let c = diff(1, 2, &before, &after);
        let kinds: Vec<(&str, ChangeKind)> = c
            .changes
            .iter()
            .map(|x| (x.cell.as_str(), x.change))
            .collect();
        assert_eq!(
            kinds,
            [
                ("a", ChangeKind::Regressed),
                ("b", ChangeKind::Improved),
                ("c", ChangeKind::NoVerdict),
                ("gone", ChangeKind::Disappeared),
                ("new", ChangeKind::Appeared),
            ]
        );
        assert_eq!((c.regressed, c.unchanged), (1, 1));
        let v = serde_json::to_value(&c.changes[3]).unwrap();
        assert!(v.get("after").is_none() && v["change"] == "disappeared");
    }
}
