//! The self-contained HTML report of a `bootproof run` (`run --html FILE`,
//! `report merge --format html`): one file, no external resources, with
//! the images × variants matrix, status filters and a text filter, and per
//! cell its boot's stage timeline (an inline SVG chart), its detail, the
//! command's output, the console log (the last [`MAX_LOG`] bytes) and the
//! QEMU command line.

use serde_json::Value;

/// Console bytes embedded per cell (the tail).
pub const MAX_LOG: usize = 256 * 1024;

use super::escape::html as esc;

/// The tail of a console log file, lossy UTF-8, without terminal escapes.
pub(super) fn console_tail(path: &str) -> Option<String> {
    use std::io::{Read, Seek, SeekFrom};
    let mut f = std::fs::File::open(path).ok()?;
    let len = f.metadata().ok()?.len();
    let start = len.saturating_sub(MAX_LOG as u64);
    f.seek(SeekFrom::Start(start)).ok()?;
    let mut buf = Vec::new();
    f.take(MAX_LOG as u64).read_to_end(&mut buf).ok()?;
    let text = String::from_utf8_lossy(&buf);
    // Drop CSI sequences (firmware menus) and other control characters.
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            if chars.peek() == Some(&'[') {
                chars.next();
                while let Some(&n) = chars.peek() {
                    chars.next();
                    if n.is_ascii_alphabetic() {
                        break;
                    }
                }
            }
            continue;
        }
        if c == '\n' || c == '\t' || !c.is_control() {
            out.push(c);
        }
    }
    Some(if start > 0 {
        format!("[… {start} earlier bytes not shown …]\n{out}")
    } else {
        out
    })
}

pub(crate) const STYLE: &str = "
body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#1d1d1f;background:#fff}
h1{font-size:1.4em;margin:0 0 .2em} code,pre{font:12px/1.35 ui-monospace,monospace}
.meta{color:#555;margin-bottom:1em}
table.matrix{border-collapse:collapse;margin:1em 0}
.matrix th,.matrix td{border:1px solid #ccc;padding:.35em .6em;text-align:left;vertical-align:top}
.matrix th{background:#f3f3f3}
td.cell a{color:inherit;text-decoration:none;display:block}
.pass{background:#e3f6e5}.fail{background:#fde2e1}.boot-failure{background:#fbd0cc}
.infra-error{background:#fff3cd}.skipped{background:#eee;color:#777}
.badge{font-weight:600;text-transform:uppercase;font-size:.8em}
#filters label{margin-right:1em} #q{width:20em}
section.cell{border:1px solid #ddd;border-radius:6px;margin:.8em 0;padding:.5em .8em}
section.cell h2{font-size:1.05em;margin:.2em 0}
pre{background:#f7f7f7;padding:.6em;overflow:auto;max-height:28em;white-space:pre-wrap}
.hidden{display:none}
svg.timeline{display:block;max-width:100%;height:auto;margin:.4em 0}
";

const SCRIPT: &str = "
function applyFilters(){
  var on={};document.querySelectorAll('#filters input[type=checkbox]').forEach(function(b){on[b.value]=b.checked});
  var q=document.getElementById('q').value.toLowerCase();
  document.querySelectorAll('[data-status]').forEach(function(e){
    var show=on[e.dataset.status]&&(q===''||e.dataset.id.toLowerCase().indexOf(q)>=0);
    e.classList.toggle('hidden',!show&&e.tagName==='SECTION');
    if(e.tagName==='TD'){e.style.opacity=show?'1':'0.25'}
  });
}
document.addEventListener('DOMContentLoaded',function(){
  document.querySelectorAll('#filters input').forEach(function(i){i.addEventListener('input',applyFilters)});
  applyFilters();
});
";

/// Which console logs a report may embed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Logs {
    /// The cells' own logs: the report describes a run this process made.
    Own,
    /// Only logs inside the cell's own evidence directory: the report was
    /// read from files (`report merge`), whose paths anyone could write,
    /// and must not pull `/etc/shadow` into a page.
    InsideEvidence,
}

/// The console log a cell names, when `logs` allows embedding it.
fn console_of(c: &Value, logs: Logs) -> Result<String, &'static str> {
    let path = c["run"]["boot"]["console_log"].as_str().ok_or("")?;
    if logs == Logs::InsideEvidence {
        let evidence = c["evidence"]
            .as_str()
            .and_then(|e| std::fs::canonicalize(e).ok())
            .ok_or("(not embedded: the cell names no evidence directory on this machine)")?;
        let log = std::fs::canonicalize(path).map_err(|_| "")?;
        if !log.starts_with(&evidence) {
            return Err("(not embedded: the log the cell names is outside its evidence directory)");
        }
    }
    console_tail(path).ok_or("")
}

/// Renders a `bootproof.run/v1` document.
pub fn render(doc: &Value, logs: Logs) -> String {
    let cells: Vec<&Value> = doc["cells"]
        .as_array()
        .map(|a| a.iter().collect())
        .unwrap_or_default();
    let s = |v: &Value| v.as_str().unwrap_or("").to_string();
    let command: Vec<String> = doc["command"]
        .as_array()
        .map(|a| a.iter().map(s).collect())
        .unwrap_or_default();
    let mut names: Vec<String> = Vec::new();
    let mut variants: Vec<String> = Vec::new();
    for c in &cells {
        if !names.contains(&s(&c["name"])) {
            names.push(s(&c["name"]));
        }
        if !variants.contains(&s(&c["variant"])) {
            variants.push(s(&c["variant"]));
        }
    }
    let statuses = ["pass", "fail", "boot-failure", "infra-error", "skipped"];
    let mut h = String::new();
    h.push_str("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">");
    h.push_str("<meta name=\"viewport\" content=\"width=device-width\">");
    h.push_str(&format!(
        "<title>bootproof run — {}</title><style>{STYLE}</style><script>{SCRIPT}</script></head><body>",
        esc(&command.join(" "))
    ));
    h.push_str(&format!(
        "<h1>bootproof run</h1><div class=\"meta\">Command: <code id=\"command\">{}</code><br>Summary: {}</div>",
        esc(&serde_json::to_string(&command).unwrap_or_default()),
        esc(&statuses
            .iter()
            .map(|st| format!("{} {st}", cells.iter().filter(|c| c["status"] == *st).count()))
            .collect::<Vec<_>>()
            .join(" · "))
    ));
    h.push_str("<div id=\"filters\">Show: ");
    for st in statuses {
        h.push_str(&format!(
            "<label><input type=\"checkbox\" value=\"{st}\" checked> {st}</label>"
        ));
    }
    h.push_str("<input id=\"q\" type=\"search\" placeholder=\"filter by image or variant\"></div>");
    h.push_str("<table class=\"matrix\" id=\"matrix\"><tr><th>image</th><th>kernel</th>");
    for v in &variants {
        h.push_str(&format!("<th>{}</th>", esc(v)));
    }
    h.push_str("</tr>");
    for name in &names {
        let row: Vec<&&Value> = cells.iter().filter(|c| s(&c["name"]) == *name).collect();
        let kernel = row
            .iter()
            .find_map(|c| c["kernel_version"].as_str())
            .unwrap_or("–");
        h.push_str(&format!(
            "<tr><th>{}</th><td>{}</td>",
            esc(name),
            esc(kernel)
        ));
        for v in &variants {
            match row.iter().position(|c| s(&c["variant"]) == *v) {
                None => h.push_str("<td>–</td>"),
                Some(_) => {
                    let c = row.iter().find(|c| s(&c["variant"]) == *v).expect("found");
                    let idx = cells
                        .iter()
                        .position(|x| std::ptr::eq(*x, **c))
                        .unwrap_or(0);
                    let st = s(&c["status"]);
                    h.push_str(&format!(
                        "<td class=\"cell {st}\" data-status=\"{st}\" data-id=\"{id}\"><a href=\"#cell-{idx}\"><span class=\"badge\">{st}</span><br>{detail}</a></td>",
                        id = esc(&s(&c["id"])),
                        detail = esc(&s(&c["detail"]))
                    ));
                }
            }
        }
        h.push_str("</tr>");
    }
    h.push_str("</table>");
    for (idx, c) in cells.iter().enumerate() {
        let st = s(&c["status"]);
        h.push_str(&format!(
            "<section class=\"cell\" id=\"cell-{idx}\" data-status=\"{st}\" data-id=\"{id}\"><h2><span class=\"badge {st}\">{st}</span> {id}</h2><div>{detail}</div>",
            id = esc(&s(&c["id"])),
            detail = esc(&s(&c["detail"]))
        ));
        if c["run"]["boot"].is_object() {
            h.push_str(&super::timeline::of_boot(&c["run"]["boot"], None));
        }
        let mut block = |title: &str, class: &str, text: &str| {
            if !text.is_empty() {
                h.push_str(&format!(
                    "<details class=\"{class}\"{}><summary>{title}</summary><pre>{}</pre></details>",
                    if class == "stdout" || class == "stderr" { " open" } else { "" },
                    esc(text)
                ));
            }
        };
        block("stdout", "stdout", &s(&c["stdout"]));
        block("stderr", "stderr", &s(&c["stderr"]));
        let log = console_of(c, logs).unwrap_or_else(|why| why.to_string());
        block("console log", "console", &log);
        let qemu: Vec<String> = c["run"]["qemu"]
            .as_array()
            .map(|a| a.iter().map(s).collect())
            .unwrap_or_default();
        block("QEMU command line", "qemu", &qemu.join(" \\\n  "));
        h.push_str("</section>");
    }
    h.push_str("</body></html>\n");
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_escaped() {
        let doc = serde_json::json!({
            "command": ["sh", "-c", "<script>alert(1)</script>"],
            "cells": [{ "id": "a / b", "name": "a", "variant": "b", "status": "fail",
                        "detail": "<b>x</b>", "stdout": "&", "stderr": "" }]
        });
        let h = render(&doc, Logs::Own);
        assert!(!h.contains("<script>alert"));
        assert!(h.contains("&lt;b&gt;x&lt;/b&gt;"));
        assert!(h.contains("data-status=\"fail\""));
    }

    /// A merged report embeds only logs inside each cell's evidence
    /// directory: a shard naming a host file gets nothing of it.
    #[test]
    fn merged_reports_embed_no_host_file() {
        let base = std::env::temp_dir().join(format!("bp-html-logs-{}", std::process::id()));
        let evidence = base.join("evidence/img/variant");
        std::fs::create_dir_all(&evidence).unwrap();
        std::fs::write(evidence.join("console.log"), "EFI stub: booting\n").unwrap();
        let secret = base.join("secret");
        std::fs::write(&secret, "root:$6$hash\n").unwrap();
        let cell = |log: &std::path::Path| {
            serde_json::json!({ "id": "i / v", "name": "i", "variant": "v", "status": "pass",
                "detail": "", "evidence": evidence, "run": { "boot": { "console_log": log } } })
        };
        let doc = serde_json::json!({ "command": ["true"], "cells": [cell(&secret)] });
        let h = render(&doc, Logs::InsideEvidence);
        assert!(!h.contains("root:$6$hash"));
        assert!(h.contains("outside its evidence directory"));
        // Through a symlink inside the evidence directory: still outside.
        std::os::unix::fs::symlink(&secret, evidence.join("link.log")).unwrap();
        let doc =
            serde_json::json!({ "command": ["true"], "cells": [cell(&evidence.join("link.log"))] });
        assert!(!render(&doc, Logs::InsideEvidence).contains("root:$6$hash"));
        // The cell's own log is embedded; a live run embeds its logs.
        let doc = serde_json::json!({ "command": ["true"], "cells": [cell(&evidence.join("console.log"))] });
        assert!(render(&doc, Logs::InsideEvidence).contains("EFI stub: booting"));
        let doc = serde_json::json!({ "command": ["true"], "cells": [cell(&secret)] });
        assert!(render(&doc, Logs::Own).contains("root:$6$hash"));
        std::fs::remove_dir_all(&base).unwrap();
    }
}
