//! `history --html FILE`: the history as one self-contained page. The
//! prediction ledger's confusion table is drawn as a grid (expected stage
//! × observed stage, the diagonal is where predictions held) with the
//! misses listed; each image's cells over the recorded runs are drawn as a
//! strip chart (one dot per cell, its height the cell's seconds, its
//! colour the verdict), so a slowdown or a new failure shows at a glance.

use super::ledger::{ledger_in, Ledger};
use super::open_db;
use crate::render::escape::html as esc;
use crate::Error;
use rusqlite::{params, Connection};
use std::fmt::Write;

/// The boot stages in order, as the ledger names them (`none`: no verdict).
pub const STAGES: [&str; 7] = [
    "firmware",
    "loader",
    "kernel",
    "initramfs",
    "userspace",
    "login",
    "none",
];

/// One cell of one run, as the strip charts draw it.
struct Point {
    run: i64,
    status: String,
    secs: f64,
    variant: String,
}

/// The page for the newest `limit` runs of the history database.
pub fn history_html(limit: usize) -> Result<String, Error> {
    render(&open_db()?, limit)
}

/// The page from an open database.
fn render(db: &Connection, limit: usize) -> Result<String, Error> {
    let ledger = ledger_in(db)?;
    let images = image_points(db, limit)?;
    let mut h = String::from("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">");
    let _ = write!(
        h,
        "<title>bootproof history</title><style>{}</style></head><body><h1>bootproof history</h1>",
        crate::render::html::STYLE
    );
    let _ = write!(
        h,
        "<h2>Predictions</h2><p id=\"held\">{} of {} predictions held</p>",
        ledger.held, ledger.total
    );
    h.push_str(&confusion_svg(&ledger));
    if !ledger.misses.is_empty() {
        h.push_str("<table class=\"matrix\" id=\"misses\"><tr><th>when</th><th>image</th><th>source</th><th>variant</th><th>expected</th><th>observed</th><th>evidence</th></tr>");
        for m in &ledger.misses {
            let _ = write!(
                h,
                "<tr class=\"fail\"><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(&m.recorded),
                esc(&m.image),
                esc(&m.source),
                esc(&m.variant),
                esc(&m.expected),
                esc(&m.observed),
                esc(&m.evidence)
            );
        }
        h.push_str("</table>");
    }
    let _ = write!(
        h,
        "<h2>Images over the last {limit} runs</h2><p>One dot per cell, left to right by run; \
         height: the cell's seconds; colour: its verdict.</p>"
    );
    if images.is_empty() {
        h.push_str("<p>no runs recorded</p>");
    }
    for (image, points) in &images {
        let _ = write!(h, "<section class=\"cell\"><h2>{}</h2>", esc(image));
        h.push_str(&strip_svg(points));
        h.push_str("</section>");
    }
    h.push_str("</body></html>\n");
    Ok(h)
}

/// Each image's cells in the newest `limit` runs, oldest run first.
fn image_points(db: &Connection, limit: usize) -> Result<Vec<(String, Vec<Point>)>, Error> {
    let err = |e: rusqlite::Error| Error::new(format!("reading the history: {e}"));
    let mut stmt = db
        .prepare(
            "SELECT c.run_id, c.image_name, c.variant, c.status, c.secs FROM cells c
             WHERE c.run_id IN (SELECT id FROM runs ORDER BY id DESC LIMIT ?1)
             ORDER BY c.image_name, c.run_id",
        )
        .map_err(err)?;
    let rows = stmt
        .query_map(params![limit as i64], |r| {
            Ok((
                r.get::<_, String>(1)?,
                Point {
                    run: r.get(0)?,
                    variant: r.get(2)?,
                    status: r.get(3)?,
                    secs: r.get(4)?,
                },
            ))
        })
        .map_err(err)?;
    let mut out: Vec<(String, Vec<Point>)> = Vec::new();
    for row in rows {
        let (image, point) = row.map_err(err)?;
        match out.last_mut() {
            Some((name, points)) if *name == image => points.push(point),
            _ => out.push((image, vec![point])),
        }
    }
    Ok(out)
}

/// The confusion table as a grid: rows expected, columns observed.
fn confusion_svg(l: &Ledger) -> String {
    let seen = |s: &&str| {
        l.confusion.contains_key(*s) || l.confusion.values().any(|row| row.contains_key(*s))
    };
    let axis: Vec<&str> = STAGES.iter().copied().filter(|s| seen(s)).collect();
    let (cell, left, top) = (56.0, 90.0, 40.0);
    let size = axis.len() as f64 * cell;
    let max = l
        .confusion
        .values()
        .flat_map(|r| r.values())
        .copied()
        .max()
        .unwrap_or(1)
        .max(1) as f64;
    let mut s = String::new();
    let _ = write!(
        s,
        "<svg class=\"confusion\" xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" \
         viewBox=\"0 0 {w} {h}\" font-family=\"system-ui,sans-serif\" font-size=\"11\">\
         <text x=\"{left}\" y=\"12\" fill=\"#555\">observed →</text>\
         <text x=\"4\" y=\"{y}\" fill=\"#555\">expected ↓</text>",
        w = left + size + 10.0,
        h = top + size + 10.0,
        y = top - 6.0
    );
    for (i, name) in axis.iter().enumerate() {
        let at = i as f64 * cell;
        let _ = write!(
            s,
            "<text x=\"{x:.1}\" y=\"{y}\" text-anchor=\"middle\">{name}</text>\
             <text x=\"{lx}\" y=\"{ly:.1}\" text-anchor=\"end\">{name}</text>",
            x = left + at + cell / 2.0,
            y = top - 6.0 - 12.0,
            lx = left - 6.0,
            ly = top + at + cell / 2.0 + 4.0
        );
    }
    for (r, expected) in axis.iter().enumerate() {
        for (c, observed) in axis.iter().enumerate() {
            let n = l
                .confusion
                .get(*expected)
                .and_then(|row| row.get(*observed))
                .copied()
                .unwrap_or(0);
            let strength = 0.15 + 0.85 * n as f64 / max;
            let fill = match (n, r == c) {
                (0, _) => "#f5f5f5".to_string(),
                (_, true) => format!("rgba(46,125,50,{strength:.2})"),
                (_, false) => format!("rgba(198,40,40,{strength:.2})"),
            };
            let _ = write!(
                s,
                "<g class=\"count\" data-expected=\"{expected}\" data-observed=\"{observed}\" data-n=\"{n}\">\
                 <rect x=\"{x:.1}\" y=\"{y:.1}\" width=\"{w:.1}\" height=\"{w:.1}\" fill=\"{fill}\" stroke=\"#fff\"/>\
                 <text x=\"{tx:.1}\" y=\"{ty:.1}\" text-anchor=\"middle\">{label}</text></g>",
                x = left + c as f64 * cell,
                y = top + r as f64 * cell,
                w = cell,
                tx = left + c as f64 * cell + cell / 2.0,
                ty = top + r as f64 * cell + cell / 2.0 + 4.0,
                label = if n == 0 { String::new() } else { n.to_string() }
            );
        }
    }
    s.push_str("</svg>");
    s
}

/// One image's cells over runs: x by run, y by seconds, colour by verdict.
fn strip_svg(points: &[Point]) -> String {
    let runs: Vec<i64> = {
        let mut r: Vec<i64> = points.iter().map(|p| p.run).collect();
        r.dedup();
        r
    };
    let (w, h, pad) = (600.0, 90.0, 14.0);
    let max = points.iter().map(|p| p.secs).fold(1.0_f64, f64::max);
    let step = (w - 2.0 * pad) / (runs.len().max(2) - 1) as f64;
    let mut s = String::new();
    let _ = write!(
        s,
        "<svg class=\"strip\" xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" \
         viewBox=\"0 0 {w} {h}\" font-family=\"system-ui,sans-serif\" font-size=\"10\">\
         <line x1=\"{pad}\" x2=\"{x2}\" y1=\"{y}\" y2=\"{y}\" stroke=\"#bbb\"/>\
         <text x=\"{pad}\" y=\"10\" fill=\"#555\">{max:.0} s</text>",
        x2 = w - pad,
        y = h - pad
    );
    for p in points {
        let i = runs.iter().position(|r| *r == p.run).unwrap_or(0);
        let fill = match p.status.as_str() {
            "pass" => "#2e7d32",
            "fail" => "#c62828",
            "boot-failure" => "#8e0000",
            "infra-error" => "#b58900",
            _ => "#999",
        };
        let _ = write!(
            s,
            "<circle class=\"dot\" data-status=\"{st}\" cx=\"{x:.1}\" cy=\"{y:.1}\" r=\"4\" fill=\"{fill}\">\
             <title>run {run}: {variant}: {st}, {secs:.1} s</title></circle>",
            st = esc(&p.status),
            x = pad + i as f64 * step,
            y = (h - pad) - (p.secs / max) * (h - 2.0 * pad - 6.0),
            run = p.run,
            variant = esc(&p.variant),
            secs = p.secs
        );
    }
    s.push_str("</svg>");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_draws_the_ledger_and_each_image_over_runs() {
        let dir =
            std::env::temp_dir().join(format!("bootproof-history-page-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let db = super::super::open_db_at(&dir.join("h.sqlite")).unwrap();
        db.execute_batch(
            "INSERT INTO runs VALUES (1, '2026-11-01T00:00:00Z', 9.0, '[\"true\"]', NULL, 0, 't');
             INSERT INTO runs VALUES (2, '2026-11-02T00:00:00Z', 9.0, '[\"true\"]', NULL, 1, 't');
             INSERT INTO cells (run_id, cell_id, image_name, image_path, arch, variant, platform,
               required, status, detail, secs, attempts)
             VALUES (1, 'a / v', '<a>.raw', '/a', 'x86_64', 'v', '{}', 1, 'pass', '', 30.0, 1),
                    (2, 'a / v', '<a>.raw', '/a', 'x86_64', 'v', '{}', 1, 'fail', '', 60.0, 1);
             INSERT INTO predictions (recorded, image_path, arch, variant, predicted, expected,
               observed, held, rules, evidence, check_ms, boot_secs, bootproof, source)
             VALUES ('t', '/a', 'x86_64', 'v', 'login', 'login', 'login', 1, '[]', '', 1, 1, 't', 'prove'),
                    ('t', '/b', 'x86_64', 'v', 'login', 'login', 'loader', 0, '[]', 'grub>', 1, 1, 't', 'run');",
        )
        .unwrap();
        let page = render(&db, 20).unwrap();
        assert!(page.contains("1 of 2 predictions held"), "{page}");
        assert!(page.contains("data-expected=\"login\" data-observed=\"loader\" data-n=\"1\""));
        assert!(page.contains("data-expected=\"login\" data-observed=\"login\" data-n=\"1\""));
        assert!(page.contains("<td>grub&gt;</td>") && page.contains("<td>run</td>"));
        assert!(page.contains("&lt;a&gt;.raw") && !page.contains("<a>.raw"));
        assert_eq!(page.matches("<circle class=\"dot\"").count(), 2);
        assert!(page.contains("data-status=\"fail\""));
        let svg_start = page.find("<svg class=\"strip\"").unwrap();
        let svg_end = page[svg_start..].find("</svg>").unwrap() + svg_start + 6;
        roxmltree::Document::parse(&page[svg_start..svg_end]).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
