//! `bootproof check`.

use crate::args::{ImageArgs, OutputArgs};
use crate::style::{write_json, SafeStdout, Style};
use bootproof_boot::chain::Arch;
use bootproof_check::rules::Severity;
use bootproof_check::{check_with, Outcome, Report};
use bootproof_runtime::render::check_junit;
use bootproof_runtime::secure_boot::trust_store;
use bootproof_runtime::{exit, Error};
use std::fmt::Write as _;
use std::io::Write;

pub const AFTER_HELP: &str = "\
Rules (stable ids; `--json` lists each with its clause, evidence and fix):
  image.*    GPT, ESP type and FAT, removable path, PE32+ EFI application of
             the right machine, no NVRAM dependence, no firmware shipped
  boot.*     the chain resolves, GRUB has the commands it runs, the menu times
             out, kernel/initrd exist, kernel arch and EFI stub, no unresolved
             $variables, root= and resume= resolve
  os.*       /etc/fstab references; kernel config: aarch64's PL011/SBSA
             console, GICv2+v3 and EFI RTC; riscv64's 16550 console, PLIC,
             AIA (warning), SBI and its timer, EFI RTC; EFI stub, ACPI+DT,
             virtio/Xen drivers, PCIe hotplug, root drivers in the initrd;
             cloud-init/Ignition (info)
  cmdline.*  the arch's serial console, no x86-only tokens on arm64, no bare
             words that would reach init
  secureboot.* with --secure-boot[=STORE]: the firmware's db/dbx accepts the
             removable loader; shim passes its own SBAT check and (db, its
             vendor certificate and MokList; dbx, its vendor dbx and
             MokListX; SBAT) accepts the loader it starts and the kernel;
             each signature proven (RSA, SHA-256) along its certificate chain

The output ends with a prediction: the stage where a firmware boot will stop
(firmware, loader, kernel, initramfs, userspace) and why, or that it reaches a
login prompt, and whether the serial console shows it (per variant: ACPI or
device tree). It is not the compliance verdict: the exit status stays that.

Exit status: 0 no error-severity rule failed, 1 one did, 2 the image cannot be read.

Examples:
  bootproof check disk.qcow2
  bootproof check --arch aarch64 --junit disk.raw > check.xml
  bootproof check --secure-boot disk.raw            # under Microsoft's UEFI CAs
  bootproof check --secure-boot=snakeoil disk.raw";

fn human(r: &Report, image: &str, st: Style) -> String {
    let s = &r.summary;
    let mut o = String::new();
    let headline = format!(
        "{image} ({}): {} passed, {} failed ({} error, {} warning), {} skipped",
        r.arch.name(),
        s.pass,
        s.fail_error + s.fail_warning,
        s.fail_error,
        s.fail_warning,
        s.skip
    );
    let _ = writeln!(o, "{}\n", st.bold(&headline));
    let width = r
        .findings
        .iter()
        .map(|f| f.rule.id.len())
        .max()
        .unwrap_or(10);
    type Pick = fn(&bootproof_check::Finding) -> bool;
    let groups: [(&str, Pick); 5] = [
        ("FAIL", |f| {
            f.outcome == Outcome::Fail && f.rule.severity == Severity::Error
        }),
        ("WARN", |f| {
            f.outcome == Outcome::Fail && f.rule.severity != Severity::Error
        }),
        ("PASS", |f| f.outcome == Outcome::Pass),
        ("SKIP", |f| f.outcome == Outcome::Skip),
        ("INFO", |f| f.outcome == Outcome::Info),
    ];
    for (label, pick) in groups {
        for f in r.findings.iter().filter(|f| pick(f)) {
            let tag = match label {
                "FAIL" => st.red_bold(label),
                "WARN" => st.yellow(label),
                "PASS" => st.green(label),
                _ => st.dim(label),
            };
            let first = f.evidence.first().cloned().unwrap_or_default();
            match label {
                "FAIL" | "WARN" => {
                    let _ = writeln!(o, "{tag}  {:<width$}  {}", f.rule.id, f.rule.title);
                    for e in &f.evidence {
                        let _ = writeln!(o, "      {:<width$}  {}", "", e);
                    }
                    let _ = writeln!(
                        o,
                        "      {:<width$}  {}",
                        "",
                        st.dim(&format!("fix: {}", f.rule.hint))
                    );
                }
                _ => {
                    let _ = writeln!(
                        o,
                        "{tag}  {:<width$}  {}  {}",
                        f.rule.id,
                        f.rule.title,
                        st.dim(&first)
                    );
                }
            }
        }
    }
    let p = &r.prediction;
    let _ = writeln!(o, "\n{} {}", st.bold("Prediction:"), p.summary());
    for c in p.console.iter().filter(|c| !c.observable) {
        let _ = writeln!(
            o,
            "  {}",
            st.dim(&format!("console ({}): {}", c.variant, c.why))
        );
    }
    o
}

pub fn run(
    args: &ImageArgs,
    arch: Option<Arch>,
    junit_out: bool,
    secure_boot: Option<&str>,
    out: OutputArgs,
) -> Result<u8, Error> {
    let img = args.open()?;
    let arch = bootproof_runtime::image::resolve_arch(&img, arch)?;
    let store = secure_boot.map(|s| trust_store(s, arch)).transpose()?;
    let report = check_with(&img, arch, store.as_ref());
    let name = args.image.display().to_string();
    let mut stdout = SafeStdout::default();
    if out.json {
        write_json(&mut stdout, &report)?;
    } else if junit_out {
        stdout.write_all(check_junit(&report, &name).as_bytes())?;
    } else {
        stdout.write_all(human(&report, &name, Style::stdout(out.color)).as_bytes())?;
    }
    Ok(exit::fail_if(report.failed()))
}
