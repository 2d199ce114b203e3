//! Run history: every `bootproof run` is recorded in a local SQLite
//! database (transactions, so concurrent runs never interleave a record);
//! `bootproof history` lists runs and `bootproof compare A B` shows which
//! cells regressed, improved, appeared or disappeared between two.
//!
//! Database: `$BOOTPROOF_HISTORY`, else `$XDG_DATA_HOME/bootproof/
//! history.sqlite` (default `~/.local/share/bootproof/history.sqlite`).
//! It also caches image digests by path, size and modification time, so a
//! run records each image's SHA-256 without re-reading an unchanged image.

mod ledger;
mod page;
mod query;
mod record;

pub use ledger::{ledger, record_prediction, record_verify, Ledger, Miss, LEDGER_SCHEMA};
pub use page::{history_html, STAGES};
pub use query::{
    cell_costs, compare_runs, history_document, list_runs, Change, ChangeKind, Comparison,
    HistoryDocument, Recorded, RunSummary, COMPARE_SCHEMA, HISTORY_SCHEMA,
};
pub use record::{file_sha256, record, ImageFacts};

use crate::Error;
use rusqlite::Connection;
use std::path::PathBuf;

/// The schema version this code writes (`PRAGMA user_version`).
const SCHEMA_VERSION: i64 = 4;

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

pub(crate) fn open_db() -> Result<Connection, Error> {
    open_db_at(&db_path())
}

/// Opens (creating or upgrading) the history database at `path`.
fn open_db_at(path: &std::path::Path) -> Result<Connection, Error> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let hint = "set BOOTPROOF_HISTORY to another file, or pass --no-history to `run`";
    let db = Connection::open(path)
        .map_err(|e| Error::with_hint(format!("history {}: {e}", path.display()), hint))?;
    let err =
        |e: rusqlite::Error| Error::with_hint(format!("history {}: {e}", path.display()), hint);
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
    }
    if version < 3 {
        // v3: the prediction ledger (`prove`).
        db.execute_batch(
            "BEGIN;
             CREATE TABLE IF NOT EXISTS predictions (
               id INTEGER PRIMARY KEY,
               recorded TEXT NOT NULL,       -- RFC 3339, UTC
               image_path TEXT NOT NULL,
               image_sha256 TEXT,
               arch TEXT NOT NULL,
               variant TEXT NOT NULL,
               predicted TEXT NOT NULL,      -- firmware | loader | kernel | initramfs | userspace | login
               expected TEXT NOT NULL,       -- what the console could show (loader when it goes quiet)
               observed TEXT,                -- NULL: the boot gave no verdict
               held INTEGER,
               rules TEXT NOT NULL,          -- JSON list of rule ids
               evidence TEXT NOT NULL,
               check_ms REAL NOT NULL,
               boot_secs REAL NOT NULL,
               bootproof TEXT NOT NULL
             );
             PRAGMA user_version = 3;
             COMMIT;",
        )
        .map_err(err)?;
    }
    if version < 4 {
        // v4: predictions from `run`'s full-mode cells too.
        db.execute_batch(
            "BEGIN;
             ALTER TABLE predictions ADD COLUMN source TEXT NOT NULL DEFAULT 'prove';  -- prove | run | verify
             ALTER TABLE predictions ADD COLUMN run_id INTEGER;   -- the run, for source = 'run'
             PRAGMA user_version = 4;
             COMMIT;",
        )
        .map_err(err)?;
    }
    if version > SCHEMA_VERSION {
        return Err(Error::with_hint(
            format!(
                "history {} has schema {version}, newer than this bootproof's ({SCHEMA_VERSION})",
                path.display()
            ),
            hint,
        ));
    }
    Ok(db)
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
        let ledger: i64 = db
            .query_row(
                "SELECT COUNT(*) FROM predictions WHERE source = 'run' AND run_id IS NULL",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(ledger, 0);
        drop(db);
        // Opening again changes nothing.
        assert!(open_db_at(&path).is_ok());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
