//! `bootproof report merge`: the shards of one run as one report
//! ([`bootproof_runtime::report::merge`]) in JSON, JUnit, Markdown or HTML,
//! exiting as the whole run would have.

use crate::style::{write_json, SafeStdout};
use bootproof_runtime::render::{html, run_junit, run_markdown};
use bootproof_runtime::report::merge as merge_shards;
use bootproof_runtime::Error;
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
    /// A self-contained HTML report (a cell's console log is embedded only
    /// when it lies inside that cell's evidence directory on this machine:
    /// shard files can name any path).
    Html,
}

/// Merges shard reports and prints the result.
pub fn merge(files: &[PathBuf], format: Format) -> Result<u8, Error> {
    let merged = merge_shards(files)?;
    let doc = serde_json::to_value(&merged).map_err(std::io::Error::other)?;
    let mut out = SafeStdout::default();
    match format {
        Format::Json => {
            write_json(&mut out, &doc)?;
        }
        Format::Html => out.write_all(html::render(&doc, html::Logs::InsideEvidence).as_bytes())?,
        Format::Junit => out.write_all(run_junit(&merged.views()).as_bytes())?,
        Format::Markdown => {
            out.write_all(run_markdown(&merged.views(), &merged.command).as_bytes())?
        }
    }
    Ok(merged.exit_code)
}
