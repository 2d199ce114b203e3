//! `bootproof report merge`: one report from the `bootproof.run/v1` files
//! of a sharded run (`run --shard K/N` on many machines), as JSON, JUnit or
//! Markdown, with the exit status the whole run would have had.

use crate::run::{exit_status, junit, markdown, summary, CellStatus, CellView};
use crate::{CliError, EXIT_OK};
use serde_json::{json, Value};
use std::io::Write;
use std::path::PathBuf;

/// Which report to print.
#[derive(Clone, Copy, clap::ValueEnum)]
pub enum Format {
    /// `bootproof.run/v1` JSON.
    Json,
    /// JUnit XML, one test case per cell.
    Junit,
    /// Markdown: images × variants.
    Markdown,
    /// A self-contained HTML report (console logs read from the paths the
    /// cells recorded, when this machine has them).
    Html,
}

/// Merges shard reports. A cell that ran in one shard replaces its
/// `skipped` entries from the others; a cell that ran in two is an error
/// (the shards were not of one matrix), as are different commands.
pub fn merge(files: &[PathBuf], format: Format) -> Result<u8, CliError> {
    let mut command: Option<Value> = None;
    let mut cells: Vec<Value> = Vec::new();
    for f in files {
        let text = std::fs::read(f).map_err(|e| {
            CliError::with_hint(
                format!("{}: {e}", f.display()),
                "pass `bootproof run --json` outputs",
            )
        })?;
        let doc: Value = serde_json::from_slice(&text).map_err(|e| {
            CliError::with_hint(
                format!("{}: not JSON: {e}", f.display()),
                "pass `bootproof run --json` outputs",
            )
        })?;
        if doc["schema"] != "bootproof.run/v1" {
            return Err(CliError::with_hint(
                format!(
                    "{}: schema {} is not bootproof.run/v1",
                    f.display(),
                    doc["schema"]
                ),
                "pass `bootproof run --json` outputs",
            ));
        }
        match &command {
            None => command = Some(doc["command"].clone()),
            Some(c) if *c != doc["command"] => {
                return Err(CliError::with_hint(
                    format!(
                        "{}: a different command ({} vs {})",
                        f.display(),
                        doc["command"],
                        c
                    ),
                    "merge the shards of one run",
                ))
            }
            Some(_) => {}
        }
        for cell in doc["cells"].as_array().into_iter().flatten() {
            let ran = cell["status"] != "skipped";
            match cells.iter_mut().find(|c| c["id"] == cell["id"]) {
                None => cells.push(cell.clone()),
                Some(have) => match (have["status"] != "skipped", ran) {
                    (true, true) => {
                        return Err(CliError::with_hint(
                            format!("cell {} ran in two of the reports", cell["id"]),
                            "merge the shards of one run (each cell runs in exactly one shard)",
                        ))
                    }
                    (false, true) => *have = cell.clone(),
                    _ => {}
                },
            }
        }
    }
    let views: Vec<CellView> = cells
        .iter()
        .map(|c| serde_json::from_value(c.clone()))
        .collect::<Result<_, _>>()
        .map_err(|e| {
            CliError::with_hint(
                format!("a cell does not parse: {e}"),
                "pass `bootproof run --json` outputs",
            )
        })?;
    let code = exit_status(&views);
    let command: Vec<String> = command
        .and_then(|c| serde_json::from_value(c).ok())
        .unwrap_or_default();
    let mut out = std::io::stdout().lock();
    let doc = json!({
        "schema": "bootproof.run/v1",
        "command": command,
        "merged_from": files,
        "cells": cells,
        "summary": summary(&views),
        "passed": code == EXIT_OK,
        "still_skipped": views.iter().filter(|c| c.status == CellStatus::Skipped).map(|c| &c.id).collect::<Vec<_>>(),
    });
    match format {
        Format::Json => {
            serde_json::to_writer_pretty(&mut out, &doc).map_err(std::io::Error::other)?;
            writeln!(out)?;
        }
        Format::Html => out.write_all(crate::html::render(&doc).as_bytes())?,
        Format::Junit => out.write_all(junit(&views).as_bytes())?,
        Format::Markdown => out.write_all(markdown(&views, &command).as_bytes())?,
    }
    Ok(code)
}
