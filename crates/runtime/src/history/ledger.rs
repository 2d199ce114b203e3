//! The prediction ledger: every `bootproof prove` records what `check`
//! predicted and what the boot showed; `history --predictions` counts
//! them as a confusion table (expected stage × observed stage) and lists
//! the misses, the material for new rules.

use super::open_db;
use crate::prove::ProveReport;
use crate::Error;
use bootproof_check::rules::Stage;
use rusqlite::params;
use serde::Serialize;
use std::collections::BTreeMap;

/// Schema of `bootproof history --predictions --json`.
pub const LEDGER_SCHEMA: &str = "bootproof.predictions/v1";

/// Records one `prove`.
pub fn record_prediction(r: &ProveReport, image_sha256: Option<&str>) -> Result<(), Error> {
    let db = open_db()?;
    let name = |s: Stage| s.name();
    db.execute(
        "INSERT INTO predictions (recorded, image_path, image_sha256, arch, variant, predicted,
           expected, observed, held, rules, evidence, check_ms, boot_secs, bootproof)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
        params![
            super::record::rfc3339(std::time::SystemTime::now()),
            r.image.display().to_string(),
            image_sha256,
            r.arch.name(),
            r.boot.platform.name(r.arch),
            name(r.prediction.stage),
            name(r.expected),
            r.observed.stage.map(name),
            r.held,
            serde_json::to_string(&r.prediction.rules).unwrap_or_default(),
            r.observed.evidence,
            r.check_ms,
            r.boot.result.elapsed,
            env!("CARGO_PKG_VERSION"),
        ],
    )
    .map_err(|e| Error::new(format!("recording the prediction: {e}")))?;
    Ok(())
}

/// One prediction that missed.
#[derive(Debug, Serialize)]
pub struct Miss {
    /// When.
    pub recorded: String,
    /// The image.
    pub image: String,
    /// The variant booted.
    pub variant: String,
    /// What the console was expected to show.
    pub expected: String,
    /// What it showed.
    pub observed: String,
    /// The console's evidence.
    pub evidence: String,
}

/// The ledger as counted.
#[derive(Debug, Serialize)]
pub struct Ledger {
    /// [`LEDGER_SCHEMA`].
    pub schema: &'static str,
    /// Proves recorded with a verdict.
    pub total: u64,
    /// Of which held.
    pub held: u64,
    /// expected stage → observed stage → count.
    pub confusion: BTreeMap<String, BTreeMap<String, u64>>,
    /// The misses, newest first.
    pub misses: Vec<Miss>,
}

/// Counts the ledger.
pub fn ledger() -> Result<Ledger, Error> {
    let db = open_db()?;
    let err = |e: rusqlite::Error| Error::new(format!("reading the prediction ledger: {e}"));
    let mut stmt = db
        .prepare(
            "SELECT recorded, image_path, variant, expected, observed, held, evidence
             FROM predictions WHERE held IS NOT NULL ORDER BY id DESC",
        )
        .map_err(err)?;
    let rows = stmt
        .query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, String>(3)?,
                r.get::<_, Option<String>>(4)?,
                r.get::<_, bool>(5)?,
                r.get::<_, String>(6)?,
            ))
        })
        .map_err(err)?;
    let mut l = Ledger {
        schema: LEDGER_SCHEMA,
        total: 0,
        held: 0,
        confusion: BTreeMap::new(),
        misses: Vec::new(),
    };
    for row in rows {
        let (recorded, image, variant, expected, observed, held, evidence) = row.map_err(err)?;
        let observed = observed.unwrap_or_else(|| "none".into());
        l.total += 1;
        l.held += u64::from(held);
        *l.confusion
            .entry(expected.clone())
            .or_default()
            .entry(observed.clone())
            .or_default() += 1;
        if !held {
            l.misses.push(Miss {
                recorded,
                image,
                variant,
                expected,
                observed,
                evidence,
            });
        }
    }
    Ok(l)
}
