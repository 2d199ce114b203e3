//! `bootproof history` and `bootproof compare`: the run history
//! ([`bootproof_runtime::history`]) as a table or JSON.

use crate::args::OutputArgs;
use crate::style::{cell, table, write_json, SafeStdout, Style};
use bootproof_runtime::history::{
    compare_runs, db_path, history_document, history_html, ledger, ChangeKind, Recorded, STAGES,
};
use bootproof_runtime::{exit, Error};
use std::io::Write;

/// `bootproof history`.
pub fn history(limit: usize, output: OutputArgs) -> Result<u8, Error> {
    let doc = history_document(limit)?;
    let mut out = SafeStdout::default();
    if output.json {
        write_json(&mut out, &doc)?;
        return Ok(exit::OK);
    }
    let runs = doc.runs;
    let rows: Vec<Vec<(String, usize)>> = runs
        .iter()
        .map(|r| {
            let counts: Vec<String> = r.counts.iter().map(|(k, v)| format!("{v} {k}")).collect();
            [
                r.id.to_string(),
                r.started.clone(),
                format!("{:.1}", r.secs),
            ]
            .into_iter()
            .chain([counts.join(", "), r.command.join(" ")])
            .map(cell)
            .collect()
        })
        .collect();
    let header = ["RUN", "STARTED (UTC)", "SECS", "CELLS", "COMMAND"];
    out.write_all(table(&header, &rows, Style::stdout(output.color)).as_bytes())?;
    if runs.is_empty() {
        writeln!(out, "no runs recorded in {}", db_path().display())?;
    }
    Ok(exit::OK)
}

/// `bootproof compare A B`: exit 1 when a cell regressed.
pub fn compare(a: &str, b: &str, output: OutputArgs) -> Result<u8, Error> {
    let c = compare_runs(a, b)?;
    let code = exit::fail_if(c.regressed > 0);
    let mut out = SafeStdout::default();
    if output.json {
        let doc = serde_json::to_value(&c).map_err(std::io::Error::other)?;
        write_json(&mut out, &doc)?;
        return Ok(code);
    }
    let so = Style::stdout(output.color);
    writeln!(
        out,
        "{} run {} → run {}",
        so.bold("Compare"),
        c.before,
        c.after
    )?;
    let side = |r: &Option<Recorded>| {
        r.as_ref()
            .map(|v| format!("{} ({})", v.status, v.detail))
            .unwrap_or_else(|| "–".into())
    };
    for ch in &c.changes {
        let word = match ch.change {
            ChangeKind::Regressed => so.red_bold("REGRESSED"),
            ChangeKind::Improved => so.green("improved"),
            ChangeKind::Appeared => so.dim("appeared"),
            ChangeKind::Disappeared => so.dim("disappeared"),
            ChangeKind::NoVerdict => so.yellow("no-verdict"),
        };
        writeln!(
            out,
            "{word:>12}  {}: {} → {}",
            ch.cell,
            side(&ch.before),
            side(&ch.after)
        )?;
    }
    writeln!(
        out,
        "{} {} regressed, {} changed, {} unchanged",
        so.bold("Summary"),
        c.regressed,
        c.changes.len(),
        c.unchanged
    )?;
    Ok(code)
}

/// `bootproof history --html FILE`.
pub fn page(path: &std::path::Path, limit: usize) -> Result<u8, Error> {
    std::fs::write(path, history_html(limit)?)
        .map_err(|e| Error::new(format!("writing {}: {e}", path.display())))?;
    Ok(exit::OK)
}

/// `bootproof history --predictions`: the confusion table and the misses.
pub fn predictions(output: OutputArgs) -> Result<u8, Error> {
    let l = ledger()?;
    let mut out = SafeStdout::default();
    if output.json {
        write_json(&mut out, &l)?;
        return Ok(exit::OK);
    }
    let st = Style::stdout(output.color);
    let seen: Vec<&str> = STAGES
        .into_iter()
        .filter(|s| l.confusion.values().any(|row| row.contains_key(*s)))
        .collect();
    let rows: Vec<Vec<(String, usize)>> = l
        .confusion
        .iter()
        .map(|(expected, row)| {
            std::iter::once(cell(expected.as_str()))
                .chain(
                    seen.iter()
                        .map(|o| cell(row.get(*o).map_or(String::new(), u64::to_string))),
                )
                .collect()
        })
        .collect();
    let mut header = vec!["EXPECTED \\ OBSERVED"];
    header.extend(&seen);
    write!(out, "{}", table(&header, &rows, st))?;
    writeln!(out, "\n{} of {} predictions held", l.held, l.total)?;
    for m in &l.misses {
        writeln!(
            out,
            "{} {} ({} {}, {}): expected {}, observed {}: {}",
            st.red_bold("MISS"),
            m.image,
            m.source,
            m.variant,
            m.recorded,
            m.expected,
            m.observed,
            m.evidence
        )?;
    }
    Ok(exit::OK)
}
