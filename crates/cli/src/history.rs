//! Run history: every `bootproof run` is recorded in a local SQLite
//! database (transactions, so concurrent runs never interleave a record);
//! `bootproof history` lists runs and `bootproof compare A B` shows which
//! cells regressed, improved, appeared or disappeared between two.
//!
//! Database: `$BOOTPROOF_HISTORY`, else `$XDG_DATA_HOME/bootproof/
//! history.sqlite` (default `~/.local/share/bootproof/history.sqlite`).
//! It also caches image digests by path, size and modification time, so a
//! run records each image's SHA-256 without re-reading an unchanged image.

use crate::run::{Cell, CellStatus};
use crate::style::Style;
use crate::{CliError, OutputArgs, EXIT_FAIL, EXIT_OK};
use rusqlite::{params, Connection};
use serde::Serialize;
use serde_json::json;
use std::io::Write;
use std::path::PathBuf;

/// The schema version this code writes (`PRAGMA user_version`).
const SCHEMA_VERSION: i64 = 2;

/// Where the history lives.
pub fn db_path() -> PathBuf {
    if let Some(p) = std::env::var_os("BOOTPROOF_HISTORY") {
        return PathBuf::from(p);
    }
    std::env::var_os("XDG_DATA_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/share")))
        .unwrap_or_else(std::env::temp_dir)
        .join("bootproof/history.sqlite")
}

fn open_db() -> Result<Connection, CliError> {
    open_db_at(&db_path())
}

/// Opens (creating or upgrading) the history database at `path`.
fn open_db_at(path: &std::path::Path) -> Result<Connection, CliError> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let hint = "set BOOTPROOF_HISTORY to another file, or pass --no-history to `run`";
    let db = Connection::open(path)
        .map_err(|e| CliError::with_hint(format!("history {}: {e}", path.display()), hint))?;
    let err =
        |e: rusqlite::Error| CliError::with_hint(format!("history {}: {e}", path.display()), hint);
    db.busy_timeout(std::time::Duration::from_secs(10))
        .map_err(err)?;
    let version: i64 = db
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(err)?;
    if version == 0 {
        db.execute_batch(
            "BEGIN;
             CREATE TABLE IF NOT EXISTS runs (
               id INTEGER PRIMARY KEY,
               started TEXT NOT NULL,        -- RFC 3339, UTC
               secs REAL NOT NULL,
               command TEXT NOT NULL,        -- JSON argv
               shard TEXT,
               exit_code INTEGER NOT NULL,
               bootproof TEXT NOT NULL       -- version that recorded it
             );
             CREATE TABLE IF NOT EXISTS cells (
               run_id INTEGER NOT NULL REFERENCES runs(id),
               cell_id TEXT NOT NULL,
               image_name TEXT NOT NULL,
               image_path TEXT NOT NULL,
               image_size INTEGER,
               kernel_sha256 TEXT,           -- the kernel that booted
               arch TEXT NOT NULL,
               kernel_version TEXT,
               variant TEXT NOT NULL,
               platform TEXT NOT NULL,       -- JSON
               required INTEGER NOT NULL,
               status TEXT NOT NULL,         -- pass | fail | boot-failure | infra-error | skipped
               detail TEXT NOT NULL,
               exit_code INTEGER,
               secs REAL NOT NULL,
               attempts INTEGER NOT NULL
             );
             CREATE INDEX IF NOT EXISTS cells_run ON cells(run_id);
             PRAGMA user_version = 1;
             COMMIT;",
        )
        .map_err(err)?;
    }
    if version < 2 {
        // v2: each cell's image digest and kernel name; the digest cache.
        db.execute_batch(
            "BEGIN;
             ALTER TABLE cells ADD COLUMN image_sha256 TEXT;
             ALTER TABLE cells ADD COLUMN kernel TEXT;   -- 'image' or the extra kernel's name
             CREATE TABLE IF NOT EXISTS file_digests (
               path TEXT PRIMARY KEY,
               size INTEGER NOT NULL,
               mtime_ns TEXT NOT NULL,
               sha256 TEXT NOT NULL
             );
             PRAGMA user_version = 2;
             COMMIT;",
        )
        .map_err(err)?;
    } else if version > SCHEMA_VERSION {
        return Err(CliError::with_hint(
            format!(
                "history {} has schema {version}, newer than this bootproof's ({SCHEMA_VERSION})",
                path.display()
            ),
            hint,
        ));
    }
    Ok(db)
}

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
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    let mut f = std::fs::File::open(path).ok()?;
    let mut buf = vec![0u8; 1 << 20];
    loop {
        if stop.load(std::sync::atomic::Ordering::Relaxed) {
            return None;
        }
        match std::io::Read::read(&mut f, &mut buf).ok()? {
            0 => break,
            n => h.update(&buf[..n]),
        }
    }
    let hex = bootproof_boot::extract::hex(h.finalize());
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
) -> Result<i64, CliError> {
    let mut db = open_db()?;
    let err = |e: rusqlite::Error| {
        CliError::with_hint(format!("recording the run: {e}"), "--no-history skips it")
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
                c.arch,
                c.kernel_version,
                c.variant,
                serde_json::to_string(&c.platform).unwrap_or_default(),
                c.required,
                status_name(&c.status),
                c.detail,
                c.exit_code,
                c.secs,
                c.attempts,
                facts.and_then(|f| f.image_sha256.clone()),
                c.kernel
            ],
        )
        .map_err(err)?;
    }
    tx.commit().map_err(err)?;
    Ok(id)
}

fn status_name(s: &CellStatus) -> String {
    serde_json::to_value(s)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

/// UTC time as RFC 3339 (no time-zone database needed).
fn rfc3339(t: std::time::SystemTime) -> String {
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

/// One run as `history` lists it.
#[derive(Debug, Serialize)]
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
    pub counts: serde_json::Value,
}

/// `bootproof history`.
pub fn history(limit: usize, output: OutputArgs) -> Result<u8, CliError> {
    let db = open_db()?;
    let err = |e: rusqlite::Error| CliError::with_hint(format!("reading the history: {e}"), "");
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
        let mut counts = serde_json::Map::new();
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
            counts.insert(s, json!(n));
        }
        runs.push(RunSummary {
            id,
            started,
            secs,
            command: serde_json::from_str(&command).unwrap_or_default(),
            shard,
            exit_code,
            counts: serde_json::Value::Object(counts),
        });
    }
    let mut out = std::io::stdout().lock();
    if output.json {
        let doc = json!({ "schema": "bootproof.history/v1", "database": db_path(), "runs": runs });
        serde_json::to_writer_pretty(&mut out, &doc).map_err(std::io::Error::other)?;
        writeln!(out)?;
        return Ok(EXIT_OK);
    }
    let so = Style::stdout(output.color);
    writeln!(
        out,
        "{}",
        so.bold(&format!(
            "{:>5}  {:20}  {:>7}  {:28}  command",
            "run", "started (UTC)", "secs", "cells"
        ))
    )?;
    for r in &runs {
        let counts: Vec<String> = r
            .counts
            .as_object()
            .map(|m| m.iter().map(|(k, v)| format!("{v} {k}")).collect())
            .unwrap_or_default();
        writeln!(
            out,
            "{:>5}  {:20}  {:>7.1}  {:28}  {}",
            r.id,
            r.started,
            r.secs,
            counts.join(", "),
            r.command.join(" ")
        )?;
    }
    if runs.is_empty() {
        writeln!(out, "no runs recorded in {}", db_path().display())?;
    }
    Ok(EXIT_OK)
}

/// Resolves `latest`, `latest~N` or a number to a run id.
fn resolve_run(db: &Connection, spec: &str) -> Result<i64, CliError> {
    let bad = || {
        CliError::with_hint(
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
#[derive(Debug, Clone, Serialize)]
struct Recorded {
    status: String,
    detail: String,
    kernel_version: Option<String>,
}

fn cells_of(db: &Connection, run: i64) -> Result<Vec<(String, Recorded)>, CliError> {
    let err = |e: rusqlite::Error| CliError::with_hint(format!("reading the history: {e}"), "");
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

/// `bootproof compare A B`: exit 1 when a cell regressed.
pub fn compare(a: &str, b: &str, output: OutputArgs) -> Result<u8, CliError> {
    let db = open_db()?;
    let (ra, rb) = (resolve_run(&db, a)?, resolve_run(&db, b)?);
    let (ca, cb) = (cells_of(&db, ra)?, cells_of(&db, rb)?);
    let verdict = |s: &str| matches!(s, "pass" | "fail" | "boot-failure");
    let mut changes = Vec::new();
    let mut unchanged = 0usize;
    for (id, before) in &ca {
        match cb.iter().find(|(i, _)| i == id) {
            None => changes.push(json!({ "cell": id, "change": "disappeared", "before": before })),
            Some((_, after)) => {
                let change = if before.status == after.status {
                    unchanged += 1;
                    continue;
                } else if before.status == "pass" && verdict(&after.status) {
                    "regressed"
                } else if after.status == "pass" && verdict(&before.status) {
                    "improved"
                } else {
                    // To or from infra-error/skipped: no verdict to compare.
                    "no-verdict"
                };
                changes.push(
                    json!({ "cell": id, "change": change, "before": before, "after": after }),
                );
            }
        }
    }
    for (id, after) in &cb {
        if !ca.iter().any(|(i, _)| i == id) {
            changes.push(json!({ "cell": id, "change": "appeared", "after": after }));
        }
    }
    let regressed = changes
        .iter()
        .filter(|c| c["change"] == "regressed")
        .count();
    let code = if regressed > 0 { EXIT_FAIL } else { EXIT_OK };
    let mut out = std::io::stdout().lock();
    if output.json {
        let doc = json!({
            "schema": "bootproof.compare/v1",
            "before": ra,
            "after": rb,
            "changes": changes,
            "unchanged": unchanged,
            "regressed": regressed,
        });
        serde_json::to_writer_pretty(&mut out, &doc).map_err(std::io::Error::other)?;
        writeln!(out)?;
        return Ok(code);
    }
    let so = Style::stdout(output.color);
    writeln!(out, "{} run {ra} → run {rb}", so.bold("Compare"))?;
    for c in &changes {
        let word = match c["change"].as_str().unwrap_or("") {
            "regressed" => so.red_bold("REGRESSED"),
            "improved" => so.green("improved"),
            "appeared" => so.dim("appeared"),
            "disappeared" => so.dim("disappeared"),
            other => so.yellow(other),
        };
        let side = |k: &str| {
            c.get(k)
                .map(|v| {
                    format!(
                        "{} ({})",
                        v["status"].as_str().unwrap_or(""),
                        v["detail"].as_str().unwrap_or("")
                    )
                })
                .unwrap_or_else(|| "–".into())
        };
        writeln!(
            out,
            "{word:>12}  {}: {} → {}",
            c["cell"].as_str().unwrap_or(""),
            side("before"),
            side("after")
        )?;
    }
    writeln!(
        out,
        "{} {regressed} regressed, {} changed, {unchanged} unchanged",
        so.bold("Summary"),
        changes.len()
    )?;
    Ok(code)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_version_1_database_is_upgraded_in_place() {
        let dir = std::env::temp_dir().join(format!("bootproof-history-v1-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("h.sqlite");
        let _ = std::fs::remove_file(&path);
        {
            let v1 = Connection::open(&path).unwrap();
            v1.execute_batch(
                "CREATE TABLE runs (id INTEGER PRIMARY KEY, started TEXT NOT NULL, secs REAL NOT NULL,
                   command TEXT NOT NULL, shard TEXT, exit_code INTEGER NOT NULL, bootproof TEXT NOT NULL);
                 CREATE TABLE cells (run_id INTEGER NOT NULL, cell_id TEXT NOT NULL, image_name TEXT NOT NULL,
                   image_path TEXT NOT NULL, image_size INTEGER, kernel_sha256 TEXT, arch TEXT NOT NULL,
                   kernel_version TEXT, variant TEXT NOT NULL, platform TEXT NOT NULL, required INTEGER NOT NULL,
                   status TEXT NOT NULL, detail TEXT NOT NULL, exit_code INTEGER, secs REAL NOT NULL,
                   attempts INTEGER NOT NULL);
                 INSERT INTO runs VALUES (1, '2026-01-01T00:00:00Z', 1.0, '[\"true\"]', NULL, 0, '0.1.0');
                 INSERT INTO cells VALUES (1, 'a / b', 'a', '/a', 1, NULL, 'aarch64', NULL, 'b', '{}', 1,
                   'pass', 'exit 0', 0, 1.0, 1);
                 PRAGMA user_version = 1;",
            )
            .unwrap();
        }
        let db = open_db_at(&path).unwrap();
        let version: i64 = db
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(version, SCHEMA_VERSION);
        // The old row is kept; the new columns and table exist.
        let (status, digest): (String, Option<String>) = db
            .query_row("SELECT status, image_sha256 FROM cells", [], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .unwrap();
        assert_eq!((status.as_str(), digest), ("pass", None));
        db.execute("INSERT INTO file_digests VALUES ('/a', 1, '0', 'ff')", [])
            .unwrap();
        drop(db);
        // Opening again changes nothing.
        assert!(open_db_at(&path).is_ok());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn rfc3339_known_instants() {
        let at = |s| std::time::UNIX_EPOCH + std::time::Duration::from_secs(s);
        assert_eq!(rfc3339(at(0)), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(at(951_782_400)), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(at(1_795_512_386)), "2026-11-24T09:26:26Z");
    }
}
