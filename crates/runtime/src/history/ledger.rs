//! The prediction ledger: every `bootproof prove` records what `check`
//! predicted and what the boot showed; `history --predictions` counts
//! them as a confusion table (expected stage × observed stage) and lists
//! the misses, the material for new rules.

use super::open_db;
use crate::prove::{expected_stage, observe, Observation, ProveReport};
use crate::verify::VerifyReport;
use crate::Error;
use bootproof_check::rules::Stage;
use bootproof_check::Prediction;
use bootproof_platform::Arch;
use rusqlite::params;
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::AtomicBool;

/// Schema of `bootproof history --predictions --json`.
pub const LEDGER_SCHEMA: &str = "bootproof.predictions/v1";

/// One prediction put to one boot, as the ledger keeps it.
pub(super) struct Entry<'a> {
    /// `prove`, `run` or `verify` (a full-mode cell or boot: the image's
    /// own chain).
    pub source: &'static str,
    /// The run, for `run`.
    pub run_id: Option<i64>,
    /// The image booted.
    pub image: &'a Path,
    /// Its digest, when known.
    pub image_sha256: Option<&'a str>,
    /// Its architecture.
    pub arch: Arch,
    /// The platform variant booted.
    pub variant: String,
    /// What `check` predicted.
    pub prediction: &'a Prediction,
    /// What the console could show ([`crate::prove::expected_stage`]).
    pub expected: Stage,
    /// What it showed.
    pub observed: Observation,
    /// Milliseconds `check` took.
    pub check_ms: f64,
    /// Seconds the boot took.
    pub boot_secs: f64,
}

impl Entry<'_> {
    /// Whether the console showed what was expected (`None`: no verdict).
    fn held(&self) -> Option<bool> {
        self.observed.stage.map(|s| s == self.expected)
    }

    /// Inserts it (inside the caller's transaction, if any).
    pub(super) fn insert(&self, db: &rusqlite::Connection) -> rusqlite::Result<()> {
        let name = |s: Stage| s.name();
        db.execute(
            "INSERT INTO predictions (recorded, image_path, image_sha256, arch, variant, predicted,
               expected, observed, held, rules, evidence, check_ms, boot_secs, bootproof, source,
               run_id)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)",
            params![
                super::record::rfc3339(std::time::SystemTime::now()),
                self.image.display().to_string(),
                self.image_sha256,
                self.arch.name(),
                self.variant,
                name(self.prediction.stage),
                name(self.expected),
                self.observed.stage.map(name),
                self.held(),
                serde_json::to_string(&self.prediction.rules).unwrap_or_default(),
                self.observed.evidence,
                self.check_ms,
                self.boot_secs,
                env!("CARGO_PKG_VERSION"),
                self.source,
                self.run_id,
            ],
        )?;
        Ok(())
    }
}

/// Records one `prove`, with the image's digest (read unless `stop` is
/// set first, from the digest cache while the file is unchanged).
pub fn record_prediction(r: &ProveReport, stop: &AtomicBool) -> Result<(), Error> {
    let digest = super::file_sha256(&r.image, stop);
    let image_sha256 = digest.as_deref();
    let db = open_db()?;
    Entry {
        source: "prove",
        run_id: None,
        image: &r.image,
        image_sha256,
        arch: r.arch,
        variant: r.boot.platform.name(r.arch),
        prediction: &r.prediction,
        expected: r.expected,
        observed: r.observed.clone(),
        check_ms: r.check_ms,
        boot_secs: r.boot.result.elapsed,
    }
    .insert(&db)
    .map_err(|e| Error::new(format!("recording the prediction: {e}")))
}

/// Records a full-mode `verify`: each boot of the image's own chain
/// against its prediction (nothing for agent mode, which boots
/// bootproof's initramfs).
pub fn record_verify(r: &VerifyReport, stop: &AtomicBool) -> Result<(), Error> {
    let Some(prediction) = &r.prediction else {
        return Ok(());
    };
    let digest = super::file_sha256(&r.image, stop);
    let mut db = open_db()?;
    let err = |e: rusqlite::Error| Error::new(format!("recording the predictions: {e}"));
    let tx = db.transaction().map_err(err)?;
    for v in &r.variants {
        Entry {
            source: "verify",
            run_id: None,
            image: &r.image,
            image_sha256: digest.as_deref(),
            arch: r.arch,
            variant: v.name.clone(),
            prediction,
            expected: expected_stage(prediction, v.platform.acpi),
            observed: observe(&v.boot.outcome),
            check_ms: r.check_ms,
            boot_secs: v.boot.elapsed,
        }
        .insert(&tx)
        .map_err(err)?;
    }
    tx.commit().map_err(err)
}

/// One prediction that missed.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct Miss {
    /// When.
    pub recorded: String,
    /// The image.
    pub image: String,
    /// The variant booted.
    pub variant: String,
    /// `prove`, or `run` (a full-mode cell).
    pub source: String,
    /// What the console was expected to show.
    pub expected: String,
    /// What it showed.
    pub observed: String,
    /// The console's evidence.
    pub evidence: String,
}

/// The ledger as counted.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct Ledger {
    /// The document's schema id, [`LEDGER_SCHEMA`].
    #[schemars(extend("const" = LEDGER_SCHEMA))]
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
    ledger_in(&open_db()?)
}

/// Counts the ledger of an open database.
pub(super) fn ledger_in(db: &rusqlite::Connection) -> Result<Ledger, Error> {
    let err = |e: rusqlite::Error| Error::new(format!("reading the prediction ledger: {e}"));
    let mut stmt = db
        .prepare(
            "SELECT recorded, image_path, variant, expected, observed, held, evidence, source
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
                r.get::<_, String>(7)?,
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
        let (recorded, image, variant, expected, observed, held, evidence, source) =
            row.map_err(err)?;
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
                source,
                expected,
                observed,
                evidence,
            });
        }
    }
    Ok(l)
}
