//! `prove`: predict a firmware boot with `check`, boot the image, and say
//! whether the prediction held — or, when it missed, what the console
//! showed instead.

use crate::boot::{boot, BootError, BootMode, BootReport, BootRequest};
use crate::image::{open, resolve_arch};
use crate::mode::Mode;
use crate::verify::{verify, Persistence, VerifyReport, VerifyRequest};
use crate::Events;
use bootproof_check::rules::Stage;
use bootproof_check::{check, Prediction, Summary};
use bootproof_platform::Arch;
use bootproof_platform::{Axes, Platform};
use bootproof_vm::classify::Stage as Seen;
use bootproof_vm::supervise::BootOutcome;
use serde::Serialize;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

/// Schema of `bootproof prove --json`.
pub const PROVE_SCHEMA: &str = "bootproof.prove/v1";

/// What the boot showed, in the prediction's terms.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct Observation {
    /// The stage the boot stopped in (`login` when it booted); `None` when
    /// the boot gave no verdict (the VM could not run, or was interrupted).
    pub stage: Option<Stage>,
    /// The console's evidence: the failing or last stage, and its cause.
    pub evidence: String,
}

/// Prediction and observation side by side.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct ProveReport {
    /// The document's schema id, [`PROVE_SCHEMA`].
    #[schemars(extend("const" = PROVE_SCHEMA))]
    pub schema: &'static str,
    /// The image.
    pub image: PathBuf,
    /// Its architecture.
    pub arch: Arch,
    /// What `check` predicted.
    pub prediction: Prediction,
    /// `check`'s rule counts (the compliance verdict, apart from the boot).
    pub compliance: Summary,
    /// Milliseconds `check` took.
    pub check_ms: f64,
    /// What the boot showed.
    pub observed: Observation,
    /// The stage the console was expected to show: the predicted one, or
    /// `loader` when the prediction says this variant's serial console
    /// goes quiet after the loader (another arch's `console=` under a
    /// device tree, no UART driver, x86 without `console=ttyS0`).
    pub expected: Stage,
    /// Whether the boot stopped where the prediction said (`None` when
    /// the boot gave no verdict).
    pub held: Option<bool>,
    /// The boot, as `bootproof boot --json` reports it.
    pub boot: BootReport,
    /// With `--verify`: the agent's checks on the booted platform variant
    /// (`bootproof verify` in agent mode, one variant, no persistence or
    /// hotplug boots).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verify: Option<VerifyReport>,
    /// With `--verify`: why the checks could not run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verify_error: Option<String>,
}

impl ProveReport {
    /// The documented exit status: the boot's (`strict`: its console's
    /// problems fail it), failed checks under `--verify`, or `MISSED` when
    /// the prediction missed.
    pub fn exit_status(&self, strict: bool) -> u8 {
        match (self.held, &self.verify, &self.verify_error) {
            (Some(false), _, _) => crate::exit::MISSED,
            (_, Some(v), _) if !v.passed => crate::exit::FAIL,
            (_, _, Some(_)) => crate::exit::ERROR,
            _ => self.boot.exit_status(strict),
        }
    }
}

/// The agent checks `prove --verify` runs after the firmware boot: agent
/// mode on the platform variant that was booted.
fn verify_request(req: &BootRequest, arch: Arch, platform: &Platform) -> VerifyRequest {
    VerifyRequest {
        image: req.image.clone(),
        allow_backing: req.allow_backing,
        arch: Some(arch),
        axes: Axes::only(platform),
        mode: Mode::Agent,
        timeout: req.timeout,
        persistence: Persistence::Off,
        hotplug: false,
        jobs: Some(1),
        ..VerifyRequest::default()
    }
}

/// The prediction's stage for a console stage.
fn stage_of(seen: &Seen) -> Stage {
    match seen {
        Seen::FirmwareStarted
        | Seen::BootOptionFailed(_)
        | Seen::BootOptionStarted(_)
        | Seen::FirmwareException(_)
        | Seen::UefiShell
        | Seen::SecureBootRejected(_) => Stage::Firmware,
        Seen::GrubStarted | Seen::GrubRescue | Seen::GrubPrompt | Seen::GrubFileNotFound(_) => {
            Stage::Loader
        }
        Seen::KernelStarted | Seen::KernelPanic(_) => Stage::Kernel,
        Seen::RootNotFound(_) => Stage::Initramfs,
        Seen::EmergencyMode | Seen::InitReached | Seen::UserspaceStarted => Stage::Userspace,
        Seen::LoginPrompt | Seen::Ready | Seen::PoweredOff => Stage::Login,
    }
}

/// The boot's outcome in the prediction's terms.
pub fn observe(outcome: &BootOutcome) -> Observation {
    let seen = |stage: Option<Stage>, evidence: String| Observation { stage, evidence };
    let last = |s: &Option<Seen>| {
        s.as_ref()
            .map_or("nothing on the console".into(), |s| s.name().to_string())
    };
    match outcome {
        BootOutcome::Booted => seen(Some(Stage::Login), "booted".into()),
        BootOutcome::Reached { stage } => seen(Some(stage_of(stage)), stage.name().into()),
        BootOutcome::Failed { stage, cause } => seen(
            Some(stage_of(stage)),
            match cause {
                Some(c) => format!("{}: {c}", stage.name()),
                None => stage.name().into(),
            },
        ),
        BootOutcome::Stalled { last: l, reason } | BootOutcome::Timeout { last: l, reason } => {
            seen(
                Some(l.as_ref().map_or(Stage::Firmware, stage_of)),
                match reason {
                    Some(r) => format!("stopped after {}: {r}", last(l)),
                    None => format!("stopped after {}", last(l)),
                },
            )
        }
        BootOutcome::Hung {
            last: l,
            silent_secs,
            after,
        } => seen(
            Some(l.as_ref().map_or(Stage::Firmware, stage_of)),
            format!(
                "hung after {}: silent for {silent_secs}s after \"{after}\"",
                last(l)
            ),
        ),
        other => seen(None, format!("no verdict: {other:?}")),
    }
}

/// The stage a boot's serial console can show, given the prediction:
/// the predicted stage, or `loader` when the prediction says this variant
/// (`acpi` or a device tree) goes quiet after the loader.
pub fn expected_stage(prediction: &Prediction, acpi: bool) -> Stage {
    let variant = if acpi { "acpi" } else { "device-tree" };
    let hidden = prediction
        .console
        .iter()
        .any(|c| !c.observable && (c.variant == "all" || c.variant == variant));
    if hidden && prediction.stage > Stage::Loader {
        Stage::Loader
    } else {
        prediction.stage
    }
}

/// Checks the image, boots it through its firmware (whatever `req.mode`
/// says) and compares; with `with_verify`, then runs the agent checks.
pub fn prove(
    req: &BootRequest,
    with_verify: bool,
    events: &dyn Events,
    interrupted: &AtomicBool,
) -> Result<ProveReport, BootError> {
    let started = Instant::now();
    let img = open(&req.image, req.allow_backing)?;
    let arch = resolve_arch(&img, req.arch)?;
    let report = check(&img, arch);
    let check_ms = started.elapsed().as_secs_f64() * 1000.0;
    drop(img);
    let mut firmware = req.clone();
    firmware.mode = BootMode::Firmware;
    firmware.arch = Some(arch);
    let boot = boot(&firmware, events, interrupted)?;
    let observed = observe(&boot.result.outcome);
    let expected = expected_stage(&report.prediction, boot.platform.acpi);
    let held = observed.stage.map(|s| s == expected);
    let (verify, verify_error) = if with_verify && !interrupted.load(Ordering::Relaxed) {
        let vreq = verify_request(req, arch, &boot.platform);
        match verify(&vreq, events, interrupted) {
            Ok(v) => (Some(v), None),
            Err(e) => (None, Some(e.message().to_string())),
        }
    } else {
        (None, None)
    };
    Ok(ProveReport {
        schema: PROVE_SCHEMA,
        image: req.image.clone(),
        arch,
        prediction: report.prediction,
        compliance: report.summary,
        check_ms,
        observed,
        expected,
        held,
        boot,
        verify,
        verify_error,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn console_stages_map_to_boot_stages_in_order() {
        let cases = [
            (Seen::UefiShell, Stage::Firmware),
            (Seen::GrubFileNotFound("x".into()), Stage::Loader),
            (Seen::KernelPanic("x".into()), Stage::Kernel),
            (Seen::RootNotFound("x".into()), Stage::Initramfs),
            (Seen::EmergencyMode, Stage::Userspace),
            (Seen::LoginPrompt, Stage::Login),
        ];
        for (seen, want) in cases {
            assert_eq!(stage_of(&seen), want, "{seen:?}");
        }
        let o = observe(&BootOutcome::Stalled {
            last: Some(Seen::GrubStarted),
            reason: Some("the menu waits for a key".into()),
        });
        assert_eq!(o.stage, Some(Stage::Loader));
        assert!(o.evidence.contains("menu waits"), "{}", o.evidence);
        assert_eq!(observe(&BootOutcome::Booted).stage, Some(Stage::Login));
    }
}
