//! A boot's stage timeline as an inline SVG chart: one bar from QEMU's
//! start to the end of the boot, a segment per phase (firmware, loader,
//! kernel, init, userspace, login), the host time at each boundary and the
//! kernel's own timestamp in each segment's tooltip, and how it ended.
//! Read from the `stages` of a `bootproof.boot/v1` result (JSON), so
//! reports merged from shards draw it too. Pure: text in, text out.

use super::escape::html as esc;
use serde_json::Value;
use std::fmt::Write;

/// One phase of a boot as drawn.
#[derive(Debug, Clone, PartialEq)]
pub struct Phase {
    /// `firmware`, `loader`, `kernel`, `init`, `initramfs`, `userspace`,
    /// `login` or `ready` (the image's readiness signal).
    pub name: &'static str,
    /// Host seconds from QEMU's start to the phase's first console line
    /// (0 for the firmware, which runs from the start).
    pub start: f64,
    /// Host seconds to the next phase (or the end of the boot).
    pub end: f64,
    /// The kernel's timestamp of that line, when it carries one.
    pub guest_time: Option<f64>,
    /// The line.
    pub line: String,
}

/// The phase a console stage (its `bootproof.boot/v1` name) belongs to.
fn phase_of(stage: &str) -> Option<&'static str> {
    Some(match stage {
        "firmware-started"
        | "boot-option-started"
        | "boot-option-failed"
        | "firmware-exception"
        | "uefi-shell"
        | "secure-boot-rejected" => "firmware",
        "grub-started" | "grub-rescue" | "grub-prompt" | "grub-file-not-found" => "loader",
        "kernel-started" | "kernel-panic" => "kernel",
        "init-reached" | "root-not-found" => "init",
        "userspace-started" | "emergency-mode" => "userspace",
        "login-prompt" => "login",
        "ready" => "ready",
        _ => return None,
    })
}

/// The phases of a boot from its `stages` array and its `elapsed` seconds.
/// `init` is called `initramfs` when the root's init system followed it,
/// or the initramfs said it could not find the root.
pub fn phases(stages: &Value, elapsed: f64) -> Vec<Phase> {
    let mut out: Vec<Phase> = Vec::new();
    let mut initramfs = false;
    for s in stages.as_array().into_iter().flatten() {
        initramfs |= s["stage"] == "root-not-found" || s["stage"] == "userspace-started";
        let Some(name) = s["stage"].as_str().and_then(phase_of) else {
            continue;
        };
        if out.iter().any(|p| p.name == name) {
            continue;
        }
        let start = s["host_time"].as_f64().unwrap_or(0.0).clamp(0.0, elapsed);
        out.push(Phase {
            name,
            start,
            end: elapsed,
            guest_time: s["guest_time"].as_f64(),
            line: s["line"].as_str().unwrap_or("").to_string(),
        });
    }
    out.sort_by(|a, b| a.start.total_cmp(&b.start));
    // The firmware runs from QEMU's start; OVMF prints its first line only
    // when its boot manager starts a boot option.
    if let Some(first) = out.first_mut().filter(|p| p.name == "firmware") {
        first.start = 0.0;
    }
    for i in 1..out.len() {
        out[i - 1].end = out[i].start;
    }
    if initramfs {
        if let Some(p) = out.iter_mut().find(|p| p.name == "init") {
            p.name = "initramfs";
        }
    }
    out
}

/// The fill colour of a phase.
fn colour(phase: &str) -> &'static str {
    match phase {
        "firmware" => "#8e9aaf",
        "loader" => "#b48ead",
        "kernel" => "#5e81ac",
        "init" | "initramfs" => "#88c0d0",
        "userspace" => "#a3be8c",
        _ => "#4c9a52",
    }
}

/// A tick step giving at most about eight ticks over `span` seconds.
fn tick_step(span: f64) -> f64 {
    [1.0, 2.0, 5.0, 10.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0]
        .into_iter()
        .find(|s| span / s <= 8.0)
        .unwrap_or(1200.0)
}

/// How the boot ended, as the chart's end mark says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// Booted, or reached the stage asked for.
    Good,
    /// Failed, stalled or timed out.
    Bad,
    /// No verdict (infra error, interrupted).
    Unknown,
}

const WIDTH: f64 = 720.0;
const LEFT: f64 = 10.0;
const BAR_Y: f64 = 22.0;
const BAR_H: f64 = 26.0;

/// The chart. `outcome` is the words at the end mark (e.g. `booted`,
/// `failed: root filesystem not found`); `predicted`, when given, marks
/// the phase a prediction said the console shows last.
pub fn svg(
    phases: &[Phase],
    elapsed: f64,
    ending: Ending,
    outcome: &str,
    predicted: Option<&str>,
) -> String {
    let span = elapsed.max(0.001);
    let scale = (WIDTH - 2.0 * LEFT) / span;
    let x = |t: f64| LEFT + t.clamp(0.0, span) * scale;
    let mut s = String::new();
    let _ = write!(
        s,
        "<svg class=\"timeline\" xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {WIDTH} 92\" \
         width=\"{WIDTH}\" height=\"92\" role=\"img\" aria-label=\"boot timeline\" \
         font-family=\"system-ui,sans-serif\" font-size=\"11\">"
    );
    let _ = write!(
        s,
        "<rect x=\"{LEFT}\" y=\"{BAR_Y}\" width=\"{:.1}\" height=\"{BAR_H}\" fill=\"#eceff4\"/>",
        WIDTH - 2.0 * LEFT
    );
    for p in phases {
        let (x0, x1) = (x(p.start), x(p.end));
        let w = (x1 - x0).max(1.0);
        let guest = p
            .guest_time
            .map_or(String::new(), |g| format!(", kernel time {g:.2} s"));
        let _ = write!(
            s,
            "<g class=\"phase\" data-phase=\"{name}\"><title>{name}: {a:.1}–{b:.1} s host{guest}&#10;{line}</title>\
             <rect x=\"{x0:.1}\" y=\"{BAR_Y}\" width=\"{w:.1}\" height=\"{BAR_H}\" fill=\"{fill}\"/>",
            name = p.name,
            a = p.start,
            b = p.end,
            line = esc(&p.line),
            fill = colour(p.name)
        );
        if w >= 6.5 * p.name.len() as f64 {
            let _ = write!(
                s,
                "<text x=\"{:.1}\" y=\"{:.1}\" fill=\"#fff\">{}</text>",
                x0 + 4.0,
                BAR_Y + 17.0,
                p.name
            );
        }
        s.push_str("</g>");
        if predicted == Some(p.name) || (predicted == Some("initramfs") && p.name == "init") {
            let _ = write!(
                s,
                "<g class=\"predicted\"><path d=\"M{x0:.1} {a:.1} l-5 -8 h10 z\" fill=\"#d08770\"/>\
                 <text x=\"{:.1}\" y=\"11\" fill=\"#a0522d\">predicted</text></g>",
                x0 + 7.0,
                a = BAR_Y - 1.0
            );
        }
    }
    let step = tick_step(span);
    let mut t = 0.0;
    while t <= span + 1e-9 {
        let _ = write!(
            s,
            "<line x1=\"{x:.1}\" x2=\"{x:.1}\" y1=\"{a}\" y2=\"{b}\" stroke=\"#999\"/>\
             <text x=\"{x:.1}\" y=\"{c}\" text-anchor=\"middle\" fill=\"#555\">{t} s</text>",
            x = x(t),
            a = BAR_Y + BAR_H,
            b = BAR_Y + BAR_H + 4.0,
            c = BAR_Y + BAR_H + 16.0,
        );
        t += step;
    }
    let (mark, fill) = match ending {
        Ending::Good => ("✔", "#2e7d32"),
        Ending::Bad => ("✘", "#c62828"),
        Ending::Unknown => ("?", "#8d6e00"),
    };
    let _ = write!(
        s,
        "<g class=\"ending\" data-ending=\"{e:?}\"><text x=\"{x:.1}\" y=\"{y:.1}\" text-anchor=\"end\" \
         fill=\"{fill}\">{mark} {words} ({elapsed:.1} s)</text></g></svg>",
        e = ending,
        x = WIDTH - LEFT,
        y = BAR_Y + BAR_H + 34.0,
        words = esc(outcome)
    );
    s
}

/// The chart of a `bootproof.boot/v1` `result` (or a run cell's
/// `run.boot`): its phases, how it ended and why.
pub fn of_boot(boot: &Value, predicted: Option<&str>) -> String {
    let elapsed = boot["elapsed"].as_f64().unwrap_or(0.0).max(0.0);
    let outcome = boot["outcome"].as_str().unwrap_or("no verdict");
    let ending = match outcome {
        "booted" | "reached" => Ending::Good,
        "failed" | "stalled" | "hung" | "timeout" => Ending::Bad,
        _ => Ending::Unknown,
    };
    let why = ["cause", "reason", "message"]
        .iter()
        .find_map(|k| boot[*k].as_str());
    let words = match why {
        Some(w) => format!("{outcome}: {w}"),
        None => outcome.to_string(),
    };
    svg(
        &phases(&boot["stages"], elapsed),
        elapsed,
        ending,
        &words,
        predicted,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn cloud_stages() -> Value {
        json!([
            {"stage": "firmware-started", "host_time": 7.79, "line": "BdsDxe: starting Boot0001"},
            {"stage": "boot-option-started", "host_time": 7.79, "line": "BdsDxe: starting Boot0001"},
            {"stage": "grub-started", "host_time": 7.81, "line": "Welcome to GRUB!"},
            {"stage": "kernel-started", "host_time": 18.9, "guest_time": 0.0, "line": "Linux version 6.1"},
            {"stage": "init-reached", "host_time": 31.3, "guest_time": 11.73, "line": "Run /init as init process"},
            {"stage": "userspace-started", "host_time": 41.0, "guest_time": 21.08, "line": "systemd 252 running in system mode <x>"},
            {"stage": "login-prompt", "host_time": 63.4, "line": "bootproof-cloud login:"}
        ])
    }

    #[test]
    fn phases_follow_the_console_and_end_where_the_next_begins() {
        let p = phases(&cloud_stages(), 66.5);
        let names: Vec<&str> = p.iter().map(|p| p.name).collect();
        assert_eq!(
            names,
            [
                "firmware",
                "loader",
                "kernel",
                "initramfs",
                "userspace",
                "login"
            ]
        );
        assert_eq!((p[0].start, p[0].end), (0.0, 7.81));
        assert_eq!(
            (p[3].start, p[3].end, p[3].guest_time),
            (31.3, 41.0, Some(11.73))
        );
        assert_eq!(p[5].end, 66.5);
        // Without the root's init system, the kernel's first process is
        // just `init`; times past the end are clamped.
        let stages = json!([{"stage": "init-reached", "host_time": 99.0, "line": "Run /init"}]);
        let p = phases(&stages, 10.0);
        assert_eq!((p[0].name, p[0].start), ("init", 10.0));
        assert!(phases(&json!(null), 1.0).is_empty());
    }

    #[test]
    fn the_chart_is_well_formed_and_escapes_console_text() {
        let p = phases(&cloud_stages(), 66.5);
        let out = svg(&p, 66.5, Ending::Good, "booted <ok>", Some("login"));
        let doc = roxmltree::Document::parse(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
        let drawn: Vec<&str> = doc
            .descendants()
            .filter_map(|n| n.attribute("data-phase"))
            .collect();
        assert_eq!(drawn.len(), 6);
        assert!(out.contains("&lt;x&gt;") && out.contains("booted &lt;ok&gt;"));
        assert_eq!(
            doc.descendants().filter(|n| n.has_tag_name("line")).count(),
            7
        );
        assert!(doc
            .descendants()
            .any(|n| n.attribute("class") == Some("predicted")));
        // An empty boot still draws the axis and the end mark.
        let out = svg(&[], 0.0, Ending::Unknown, "infra error", None);
        assert!(roxmltree::Document::parse(&out).is_ok(), "{out}");
    }

    #[test]
    fn a_boot_result_is_drawn_with_its_ending() {
        let boot = json!({"outcome": "failed", "cause": "Gave up waiting for root", "elapsed": 64.2,
            "stages": [{"stage": "kernel-started", "host_time": 12.0},
                       {"stage": "init-reached", "host_time": 20.0},
                       {"stage": "root-not-found", "host_time": 55.0}]});
        let out = of_boot(&boot, Some("initramfs"));
        assert!(out.contains("data-ending=\"Bad\"") && out.contains("failed: Gave up waiting"));
        assert!(out.contains(">predicted<"), "{out}");
        assert!(of_boot(&json!({}), None).contains("data-ending=\"Unknown\""));
    }

    #[test]
    fn ticks_stay_few() {
        for span in [0.5, 9.0, 66.0, 300.0, 3600.0, 1e6] {
            assert!(span / tick_step(span) <= 8.0 || tick_step(span) == 1200.0);
        }
    }
}
