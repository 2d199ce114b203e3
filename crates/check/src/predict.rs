//! The boot outcome predicted from the findings: where a firmware boot of
//! the image stops and why, or that it reaches a login prompt — and
//! whether the serial console shows it, per platform variant where they
//! differ. This is not the compliance verdict: an MBR disk breaks the VM
//! specification and still boots on QEMU's firmware; an image can pass
//! every rule and still stall.

use super::*;
use rules::Stage;

/// What `check` predicts a firmware boot of the image will do.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct Prediction {
    /// The stage the boot stops in; `login` when it reaches a login prompt.
    pub stage: Stage,
    /// Why, in one sentence.
    pub cause: String,
    /// The failed rules behind the prediction (those of the earliest
    /// stage; empty when it reaches login).
    pub rules: Vec<&'static str>,
    /// Whether the serial console shows the boot, per platform variant.
    pub console: Vec<ConsoleView>,
}

impl Prediction {
    /// One line for humans: `stops in the loader: … (boot.kernel-files)`.
    pub fn summary(&self) -> String {
        let head = if self.stage == Stage::Login {
            "reaches a login prompt".to_string()
        } else {
            format!("stops in the {}: {}", self.stage.name(), self.cause)
        };
        let ids = if self.rules.is_empty() {
            String::new()
        } else {
            format!(" ({})", self.rules.join(", "))
        };
        let hidden: Vec<&str> = self
            .console
            .iter()
            .filter(|c| !c.observable)
            .map(|c| c.variant.as_str())
            .collect();
        let console = match hidden.as_slice() {
            [] => String::new(),
            v if v.len() == self.console.len() => {
                "; the serial console will not show it".to_string()
            }
            v => format!("; not shown on the serial console with {}", v.join(", ")),
        };
        format!("{head}{ids}{console}")
    }
}

/// Whether one platform variant's serial console shows the boot.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct ConsoleView {
    /// The variant (`acpi`, `device-tree`, or `all`).
    pub variant: String,
    /// Whether kernel and login output reach the serial console.
    pub observable: bool,
    /// Why.
    pub why: String,
}

impl Ctx<'_> {
    /// The prediction from the findings so far (call after every rule).
    pub(super) fn predict(&self) -> Prediction {
        let failed: Vec<&Finding> = self
            .findings
            .iter()
            .filter(|f| f.outcome == Outcome::Fail && f.rule.stops.is_some())
            .collect();
        let first = failed
            .iter()
            .filter_map(|f| f.rule.stops.map(|s| s.stage))
            .min();
        let console = self.console_views();
        let Some(stage) = first else {
            return Prediction {
                stage: Stage::Login,
                cause: "no failed rule stops the boot".into(),
                rules: Vec::new(),
                console,
            };
        };
        let at: Vec<&&Finding> = failed
            .iter()
            .filter(|f| f.rule.stops.is_some_and(|s| s.stage == stage))
            .collect();
        Prediction {
            stage,
            cause: at[0]
                .rule
                .stops
                .map(|s| s.effect)
                .unwrap_or_default()
                .into(),
            rules: at.iter().map(|f| f.rule.id).collect(),
            console,
        }
    }

    /// Where kernel output goes: the arch's UART named on the command
    /// line, or found by the kernel itself (arm64: the device tree's
    /// `stdout-path` when no `console=` is given, ACPI's SPCR table always).
    fn console_views(&self) -> Vec<ConsoleView> {
        let all = |observable, why: String| {
            vec![ConsoleView {
                variant: "all".into(),
                observable,
                why,
            }]
        };
        let uart = self.arch.console();
        if self
            .findings
            .iter()
            .any(|f| f.rule.id == rules::OS_UART.id && f.outcome == Outcome::Fail)
        {
            return all(false, "the kernel has no driver for the serial port".into());
        }
        let Some(cmdline) = self.cmdline() else {
            return all(true, "no boot entry: only firmware output".into());
        };
        let consoles: Vec<&str> = cmdline
            .split_whitespace()
            .filter_map(|w| w.strip_prefix("console="))
            .map(|c| c.split(',').next().unwrap_or(c))
            .collect();
        if consoles.contains(&uart) {
            return all(true, format!("console={uart} on the command line"));
        }
        if !self.arch.info().device_tree {
            return all(
                false,
                format!("no console={uart}: the kernel writes to the screen, not the serial port"),
            );
        }
        let named = if consoles.is_empty() {
            "no console=".to_string()
        } else {
            format!("console={} only", consoles.join(","))
        };
        vec![
            ConsoleView {
                variant: "acpi".into(),
                observable: true,
                why: format!("{named}: the kernel adds the SPCR table's {uart}"),
            },
            ConsoleView {
                variant: "device-tree".into(),
                observable: consoles.is_empty(),
                why: if consoles.is_empty() {
                    format!("{named}: the kernel uses the device tree's stdout-path ({uart})")
                } else {
                    format!(
                        "{named}: the device tree's stdout-path is ignored when console= is given"
                    )
                },
            },
        ]
    }
}
