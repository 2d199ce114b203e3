//! Verifies an image through the engine alone — no CLI — and prints the
//! `bootproof.verify/v1` report, the way a CI service embedding
//! bootproof-runtime would.
//!
//! ```sh
//! cargo run -p bootproof-runtime --example verify -- disk.qcow2 [gic=3 acpi=on transport=pci]
//! ```
//!
//! Progress goes to stderr through an `Events` implementation; Ctrl-C is
//! left to the default handler (a library user sets the `AtomicBool`).

use bootproof_platform::Axes;
use bootproof_runtime::verify::{verify, Persistence, VerifyRequest};
use bootproof_runtime::Events;
use std::process::ExitCode;
use std::sync::atomic::AtomicBool;

/// Prints each finished boot on stderr.
struct Lines;

impl Events for Lines {
    fn variant_finished(&self, name: &str, result: Result<bool, &str>) {
        match result {
            Ok(passed) => eprintln!("{name}: {}", if passed { "pass" } else { "fail" }),
            Err(e) => eprintln!("{name}: could not run: {e}"),
        }
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some((image, axes)) = args.split_first() else {
        eprintln!("usage: verify IMAGE [AXIS=VALUES]...");
        return ExitCode::from(2);
    };
    let axes = match Axes::parse(axes) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e} ({})", e.hint);
            return ExitCode::from(2);
        }
    };
    let req = VerifyRequest {
        image: image.into(),
        axes,
        hotplug: false,
        persistence: Persistence::Off,
        ..Default::default()
    };
    match verify(&req, &Lines, &AtomicBool::new(false)) {
        Ok(report) => {
            println!(
                "{}",
                serde_json::to_string_pretty(&report).expect("reports serialize")
            );
            ExitCode::from(if report.passed { 0 } else { 1 })
        }
        Err(e) => {
            eprintln!("error: {e}");
            if let Some(hint) = e.hint() {
                eprintln!("hint: {hint}");
            }
            ExitCode::from(2)
        }
    }
}
