//! Reports in the forms CI systems read: JUnit XML, Markdown (a job
//! summary) and a self-contained HTML page. Human terminal output is the
//! front end's; these are formats an embedding service wants too.

pub mod escape;
pub mod html;
pub mod junit;
pub mod prove_page;
pub mod timeline;

use crate::launch::VariantResult;
use crate::run::{CellStatus, CellView};
use bootproof_agent::{Record, Status};
use bootproof_check::rules::Severity;
use bootproof_check::{Outcome, Report};
use junit::{render, Case, CaseOutcome, Suite};
use std::path::Path;

/// The command as a user would retype it (for display only; it is never
/// parsed back).
pub fn shell_words(argv: &[String]) -> String {
    argv.iter()
        .map(|a| {
            if !a.is_empty()
                && a.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_./=:,+@%".contains(c))
            {
                a.clone()
            } else {
                format!("'{}'", a.replace('\'', "'\\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// `run`'s Markdown summary: images × variants.
pub fn run_markdown(cells: &[CellView], command: &[String]) -> String {
    let mut variants: Vec<&str> = Vec::new();
    let mut images: Vec<&str> = Vec::new();
    for c in cells {
        if !variants.contains(&c.variant.as_str()) {
            variants.push(&c.variant);
        }
        if !images.contains(&c.name.as_str()) {
            images.push(&c.name);
        }
    }
    let mut s = format!(
        "### `bootproof run` — {}\n\n| image | kernel |",
        escape::code_span(&shell_words(command))
    );
    for v in &variants {
        s.push_str(&format!(" {} |", escape::markdown(v)));
    }
    s.push_str("\n|---|---|");
    s.push_str(&"---|".repeat(variants.len()));
    s.push('\n');
    for img in &images {
        let row: Vec<&CellView> = cells.iter().filter(|c| c.name == *img).collect();
        s.push_str(&format!(
            "| {} | {} |",
            escape::markdown(img),
            escape::markdown(
                row.first()
                    .and_then(|c| c.kernel_version.as_deref())
                    .unwrap_or("–")
            )
        ));
        for v in &variants {
            let text = match row.iter().find(|c| c.variant == *v) {
                None => "–".to_string(),
                Some(c) => {
                    let what = match c.status {
                        CellStatus::Pass => "✅",
                        CellStatus::Fail => "❌",
                        CellStatus::BootFailure => "💥",
                        CellStatus::InfraError => "⚠️",
                        CellStatus::Skipped => "⏭️",
                    };
                    format!("{what} {}", escape::markdown(&c.detail))
                }
            };
            s.push_str(&format!(" {text} |"));
        }
        s.push('\n');
    }
    s.push_str("\n✅ pass · ❌ the command failed · 💥 the guest never ran it · ⚠️ infra error · ⏭️ skipped\n");
    s
}

/// `run`'s JUnit report: one test case per cell.
pub fn run_junit(cells: &[CellView]) -> String {
    let cases = cells
        .iter()
        .map(|c| Case {
            class: c.name.clone(),
            name: c.variant.clone(),
            outcome: match c.status {
                CellStatus::Pass => CaseOutcome::Pass(c.stdout.clone()),
                CellStatus::Skipped => CaseOutcome::Skip(c.detail.clone()),
                CellStatus::Fail | CellStatus::BootFailure | CellStatus::InfraError => {
                    CaseOutcome::Fail {
                        kind: c.status.name().into(),
                        message: c.detail.clone(),
                        body: format!("stdout:\n{}\nstderr:\n{}", c.stdout, c.stderr),
                    }
                }
            },
        })
        .collect();
    render(
        "bootproof run",
        &[Suite {
            name: "bootproof run".into(),
            cases,
        }],
    )
}

/// `verify`'s JUnit report: a suite per boot, a case per check.
pub fn verify_junit(image: &Path, done: &[VariantResult], errors: &[String]) -> String {
    let mut suites: Vec<Suite> = done
        .iter()
        .map(|v| {
            let mut cases: Vec<Case> = v
                .records
                .iter()
                .filter_map(|r| match r {
                    Record::Check {
                        id,
                        status,
                        evidence,
                    } => Some(Case {
                        class: format!(
                            "bootproof.verify.{}",
                            id.split('.').next().unwrap_or("check")
                        ),
                        name: id.clone(),
                        outcome: match status {
                            Status::Pass => CaseOutcome::Pass(evidence.clone()),
                            Status::Skip => CaseOutcome::Skip(evidence.clone()),
                            Status::Fail => CaseOutcome::Fail {
                                kind: "check".into(),
                                message: evidence.clone(),
                                body: evidence.clone(),
                            },
                        },
                    }),
                    _ => None,
                })
                .collect();
            let finished = v.records.iter().any(|r| matches!(r, Record::Done { .. }));
            cases.push(Case {
                class: "bootproof.verify.agent".into(),
                name: "agent.finished".into(),
                outcome: if finished {
                    CaseOutcome::Pass(format!(
                        "{:.1} s to the last record",
                        v.done_secs.unwrap_or(0.0)
                    ))
                } else {
                    CaseOutcome::Fail {
                        kind: "agent".into(),
                        message: "the agent did not finish".into(),
                        body: format!("console log: {}", v.boot.console_log.display()),
                    }
                },
            });
            Suite {
                name: format!("{} [{}]", image.display(), v.name),
                cases,
            }
        })
        .collect();
    for e in errors {
        suites.push(Suite {
            name: format!("{} [could not run]", image.display()),
            cases: vec![Case {
                class: "bootproof.verify.infra".into(),
                name: "vm.started".into(),
                outcome: CaseOutcome::Fail {
                    kind: "infra".into(),
                    message: e.clone(),
                    body: e.clone(),
                },
            }],
        });
    }
    render("bootproof verify", &suites)
}

/// `check`'s JUnit report: one test case per rule.
pub fn check_junit(r: &Report, image: &str) -> String {
    let cases = r
        .findings
        .iter()
        .map(|f| {
            let evidence = f.evidence.join("\n");
            let outcome = match f.outcome {
                Outcome::Fail => CaseOutcome::Fail {
                    kind: if f.rule.severity == Severity::Error {
                        "error"
                    } else {
                        "warning"
                    }
                    .into(),
                    message: f.evidence.first().cloned().unwrap_or_default(),
                    body: format!(
                        "{evidence}\nclause: {}\nfix: {}",
                        f.rule.clause, f.rule.hint
                    ),
                },
                Outcome::Skip => CaseOutcome::Skip(evidence),
                _ => CaseOutcome::Pass(evidence),
            };
            Case {
                class: format!(
                    "bootproof.{}",
                    f.rule.id.split('.').next().unwrap_or("rule")
                ),
                name: format!("{}: {}", f.rule.id, f.rule.title),
                outcome,
            }
        })
        .collect();
    render(
        "bootproof check",
        &[Suite {
            name: format!("bootproof check {image} ({})", r.arch.name()),
            cases,
        }],
    )
}

/// `prove`'s JUnit report: one suite with the prediction (held, missed,
/// or skipped when the boot gave no verdict), the boot's outcome, and the
/// console's health scan (failing only under `strict`, as the exit
/// status does).
pub fn prove_junit(r: &crate::prove::ProveReport, strict: bool) -> String {
    let said = format!(
        "predicted: {}\nexpected on the console: {}\nobserved: {}",
        r.prediction.summary(),
        r.expected.name(),
        r.observed.evidence
    );
    let prediction = match r.held {
        Some(true) => CaseOutcome::Pass(said),
        Some(false) => CaseOutcome::Fail {
            kind: "missed".into(),
            message: format!(
                "predicted the {}, the console showed {}",
                r.expected.name(),
                r.observed.evidence
            ),
            body: format!(
                "{said}\nconsole log: {}",
                r.boot.result.console_log.display()
            ),
        },
        None => CaseOutcome::Skip(format!("no verdict: {}", r.observed.evidence)),
    };
    let outcome = serde_json::to_value(&r.boot.result.outcome)
        .ok()
        .and_then(|v| v["outcome"].as_str().map(str::to_string))
        .unwrap_or_else(|| "unknown".into());
    let boot = if r.boot.exit_status(false) == crate::exit::OK {
        CaseOutcome::Pass(format!("{outcome}: {}", r.observed.evidence))
    } else {
        CaseOutcome::Fail {
            kind: outcome.clone(),
            message: r.observed.evidence.clone(),
            body: format!("console log: {}", r.boot.result.console_log.display()),
        }
    };
    let problems: Vec<String> = r
        .boot
        .result
        .problems
        .iter()
        .map(|p| format!("{}: {}", p.kind, p.line))
        .collect();
    let health = match (problems.is_empty(), strict) {
        (true, _) => CaseOutcome::Pass("no problems on the console".into()),
        (false, false) => CaseOutcome::Pass(problems.join("\n")),
        (false, true) => CaseOutcome::Fail {
            kind: "problems".into(),
            message: format!("{} problems on the console", problems.len()),
            body: problems.join("\n"),
        },
    };
    let case = |name: &str, outcome| Case {
        class: "bootproof.prove".into(),
        name: name.into(),
        outcome,
    };
    let verify = match (&r.verify, &r.verify_error) {
        (Some(v), _) if v.passed => Some(CaseOutcome::Pass("the agent's checks passed".into())),
        (Some(v), _) => {
            let failed: Vec<String> = v
                .variants
                .iter()
                .flat_map(|x| x.failures())
                .map(|(id, why)| format!("{id}: {why}"))
                .collect();
            Some(CaseOutcome::Fail {
                kind: "check".into(),
                message: format!("{} checks failed", failed.len()),
                body: failed.join("\n"),
            })
        }
        (None, Some(e)) => Some(CaseOutcome::Fail {
            kind: "infra".into(),
            message: e.clone(),
            body: e.clone(),
        }),
        (None, None) => None,
    };
    render(
        "bootproof prove",
        &[Suite {
            name: r.image.display().to_string(),
            cases: [
                Some(case("prediction", prediction)),
                Some(case("boot", boot)),
                Some(case("boot.health", health)),
                verify.map(|v| case("verify", v)),
            ]
            .into_iter()
            .flatten()
            .collect(),
        }],
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shell_words_quote_for_display() {
        assert_eq!(
            shell_words(&["sh".into(), "-c".into(), "echo 'x' $(id)".into()]),
            "sh -c 'echo '\\''x'\\'' $(id)'"
        );
    }
}
