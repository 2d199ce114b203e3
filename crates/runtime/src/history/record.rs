//! Writing the history: a finished run and its cells in one transaction,
//! and the image digests cached by path, size and modification time.

use super::ledger::Entry;
use super::open_db;
use crate::prove::{expected_stage, observe};
use crate::run::{Cell, CellStatus};
use crate::Error;
use bootproof_check::Prediction;
use rusqlite::params;

/// What `run` knows about one image beyond its cells.
pub struct ImageFacts {
    /// Display name.
    pub name: String,
    /// Size in bytes.
    pub size: u64,
    /// sha256 of the image file.
    pub image_sha256: Option<String>,
    /// sha256 of the kernel booted.
    pub kernel_sha256: Option<String>,
    /// `check`'s prediction for a full-mode row (the image's own boot
    /// chain) and the milliseconds it took; its cells go to the ledger.
    pub prediction: Option<(Prediction, f64)>,
}

/// SHA-256 of a file: from the history's digest cache while its size and
/// modification time are what they were, else read (and cached). `None`
/// when the file or the database cannot be read, or `stop` was set (the
/// run was interrupted) before the file was read through.
pub fn file_sha256(path: &std::path::Path, stop: &std::sync::atomic::AtomicBool) -> Option<String> {
    let meta = std::fs::metadata(path).ok()?;
    let mtime_ns = meta
        .modified()
        .ok()?
        .duration_since(std::time::UNIX_EPOCH)
        .ok()?
        .as_nanos()
        .to_string();
    let key = std::fs::canonicalize(path).ok()?.display().to_string();
    let db = open_db().ok()?;
    let hit: Option<String> = db
        .query_row(
            "SELECT sha256 FROM file_digests WHERE path = ?1 AND size = ?2 AND mtime_ns = ?3",
            params![key, meta.len() as i64, mtime_ns],
            |r| r.get(0),
        )
        .ok();
    if hit.is_some() {
        return hit;
    }
    let hex = bootproof_image::digest::sha256_file(path, Some(stop)).ok()?;
    let _ = db.execute(
        "INSERT OR REPLACE INTO file_digests (path, size, mtime_ns, sha256) VALUES (?1, ?2, ?3, ?4)",
        params![key, meta.len() as i64, mtime_ns, hex],
    );
    Some(hex)
}

/// Records a finished run; returns its id.
pub fn record(
    command: &[String],
    shard: Option<&str>,
    started: std::time::SystemTime,
    secs: f64,
    exit_code: u8,
    cells: &[Cell],
    images: &[ImageFacts],
) -> Result<i64, Error> {
    let mut db = open_db()?;
    let err = |e: rusqlite::Error| {
        Error::with_hint(format!("recording the run: {e}"), "--no-history skips it")
    };
    let tx = db.transaction().map_err(err)?;
    tx.execute(
        "INSERT INTO runs (started, secs, command, shard, exit_code, bootproof) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![
            rfc3339(started),
            secs,
            serde_json::to_string(command).unwrap_or_default(),
            shard,
            i64::from(exit_code),
            env!("CARGO_PKG_VERSION")
        ],
    )
    .map_err(err)?;
    let id = tx.last_insert_rowid();
    for c in cells {
        let facts = images.iter().find(|i| i.name == c.name);
        tx.execute(
            "INSERT INTO cells (run_id, cell_id, image_name, image_path, image_size, kernel_sha256, arch,
               kernel_version, variant, platform, required, status, detail, exit_code, secs, attempts,
               image_sha256, kernel)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18)",
            params![
                id,
                c.id,
                c.name,
                c.image.display().to_string(),
                facts.map(|f| f.size as i64),
                facts.and_then(|f| f.kernel_sha256.clone()),
                c.arch.name(),
                c.kernel_version,
                c.variant,
                serde_json::to_string(&c.platform).unwrap_or_default(),
                c.required,
                c.status.name(),
                c.detail,
                c.exit_code,
                c.secs,
                c.attempts,
                facts.and_then(|f| f.image_sha256.clone()),
                c.kernel
            ],
        )
        .map_err(err)?;
        if let Some(entry) = facts.and_then(|f| ledger_entry(id, c, f)) {
            entry.insert(&tx).map_err(err)?;
        }
    }
    tx.commit().map_err(err)?;
    Ok(id)
}

/// A full-mode cell's boot against its image's prediction (`None` for
/// agent-mode cells, whose boot is not the image's own chain, and for
/// cells that never booted).
fn ledger_entry<'a>(run_id: i64, c: &'a Cell, f: &'a ImageFacts) -> Option<Entry<'a>> {
    let (prediction, check_ms) = f.prediction.as_ref()?;
    let boot = &c.run.as_ref()?.boot;
    if c.status == CellStatus::Skipped {
        return None;
    }
    Some(Entry {
        source: "run",
        run_id: Some(run_id),
        image: &c.image,
        image_sha256: f.image_sha256.as_deref(),
        arch: c.arch,
        variant: c.variant.clone(),
        prediction,
        expected: expected_stage(prediction, c.platform.acpi),
        observed: observe(&boot.outcome),
        check_ms: *check_ms,
        boot_secs: boot.elapsed,
    })
}

/// UTC time as RFC 3339 (no time-zone database needed).
pub(super) fn rfc3339(t: std::time::SystemTime) -> String {
    let secs = t
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs()) as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_known_instants() {
        let at = |s| std::time::UNIX_EPOCH + std::time::Duration::from_secs(s);
        assert_eq!(rfc3339(at(0)), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(at(951_782_400)), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(at(1_795_512_386)), "2026-11-24T09:26:26Z");
    }
}
