//! The check library on real images (built from Debian's packages by
//! tests/images/make-boot-images.py): a clean arm64 image passes every rule
//! with nothing skipped, every rule of the catalog is evaluated once, in
//! catalog order, and an x86 loader at the arm64 removable path fails the
//! loader rule for the arm64 check.

use bootproof_check::{check, rules, Outcome};
use bootproof_image::OpenOptions;
use bootproof_inspect::OpenedImage;
use bootproof_platform::Arch;
use bootproof_testkit::boot_images;

fn open(name: &str) -> OpenedImage {
    OpenedImage::open(boot_images().join(name), &OpenOptions::default()).unwrap()
}

#[test]
fn a_clean_image_passes_every_rule_in_catalog_order() {
    let img = open("debian-grub-arm64.raw");
    let report = check(&img, Arch::Aarch64);
    let ids: Vec<&str> = report.findings.iter().map(|f| f.rule.id).collect();
    let catalog: Vec<&str> = rules::ALL.iter().map(|r| r.id).collect();
    assert_eq!(ids, catalog, "every rule once, in catalog order");
    let not_passed: Vec<(&str, Outcome, &Vec<String>)> = report
        .findings
        .iter()
        .filter(|f| !matches!(f.outcome, Outcome::Pass | Outcome::Info))
        // Without a trust store the Secure Boot rules say skipped and why;
        // so do the rules of riscv64 guests.
        .filter(|f| !(f.rule.id.starts_with("secureboot.") && f.outcome == Outcome::Skip))
        .filter(|f| !(f.outcome == Outcome::Skip && f.evidence == ["applies to riscv64 guests"]))
        .map(|f| (f.rule.id, f.outcome, &f.evidence))
        .collect();
    assert!(not_passed.is_empty(), "{not_passed:#?}");
    assert!(!report.failed());
    assert_eq!(report.arch, Arch::Aarch64);
}

#[test]
fn the_wrong_architecture_fails_the_removable_loader() {
    // The amd64 image checked as aarch64: BOOTAA64.EFI is missing.
    let img = open("debian-grub-amd64.raw");
    let report = check(&img, Arch::Aarch64);
    assert!(report.failed());
    let failed: Vec<&str> = report
        .findings
        .iter()
        .filter(|f| f.outcome == Outcome::Fail)
        .map(|f| f.rule.id)
        .collect();
    assert!(
        failed.iter().any(|id| id.contains("removable")),
        "{failed:?}"
    );
    // As what it is, it boots.
    let report = check(&img, Arch::X86_64);
    let errors: Vec<&str> = report
        .findings
        .iter()
        .filter(|f| f.outcome == Outcome::Fail && f.rule.severity == rules::Severity::Error)
        .map(|f| f.rule.id)
        .collect();
    assert!(errors.is_empty(), "{errors:?}");
}
