//! Running `bootproof boot --json` in tests and reading its report: the
//! outcome, the stage timeline, the console, the Secure Boot verdict.

use bootproof_testkit::scratch;
use serde_json::Value;
use std::path::Path;
use std::process::Command;

/// Runs `bootproof boot --json` with its state in `dir`; returns the exit
/// code and the report.
pub fn boot_in(dir: &Path, args: &[&str]) -> (i32, Value) {
    let out = Command::new(env!("CARGO_BIN_EXE_bootproof"))
        .arg("boot")
        .arg("--json")
        .arg("--console-log")
        .arg(dir.join("console.log"))
        .args(args)
        .env("BOOTPROOF_STATE_DIR", dir.join("state"))
        .output()
        .unwrap();
    let mut v: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{args:?}: {e}: {}", String::from_utf8_lossy(&out.stderr)));
    // The console, for failure messages (the scratch directory holding the
    // log may be gone by then).
    let log = std::fs::read(dir.join("console.log")).unwrap_or_default();
    v["test_console"] = String::from_utf8_lossy(&log).into_owned().into();
    (out.status.code().unwrap(), v)
}

/// [`boot_in`] a fresh scratch directory named `name`.
pub fn boot(name: &str, args: &[&str]) -> (i32, Value) {
    boot_in(&scratch("boot", name), args)
}

/// The stage names of a report, in order.
pub fn stages(v: &Value) -> Vec<String> {
    v["result"]["stages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["stage"].as_str().unwrap().to_string())
        .collect()
}

/// Asserts the report's stages contain `want` in this order.
pub fn assert_in_order(v: &Value, want: &[&str]) {
    let got = stages(v);
    let mut at = 0;
    for w in want {
        match got[at..].iter().position(|g| g == w) {
            Some(i) => at += i + 1,
            None => panic!(
                "stage {w} missing or out of order in {got:?}\nconsole: {}",
                console(v)
            ),
        }
    }
}

/// The guest's serial console, as the boot logged it.
pub fn console(v: &Value) -> String {
    v["test_console"].as_str().unwrap_or_default().to_string()
}

/// Asserts the boot reached its end (`booted`, exit 0).
pub fn assert_booted(code: i32, v: &Value) {
    assert_eq!(
        v["result"]["outcome"],
        "booted",
        "{}\nconsole: {}",
        serde_json::to_string_pretty(&v["result"]).unwrap(),
        console(v)
    );
    assert_eq!(code, 0);
    assert_eq!(v["schema"], "bootproof.boot/v1");
    // A real kernel's own clock is on the stages it printed.
    let off = &v["result"]["stages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["stage"] == "powered-off")
        .unwrap()["guest_time"];
    assert!(off.as_f64().unwrap() > 0.1, "{off}");
}

/// The boot report's Secure Boot prediction agreed with the boot, and said
/// `who` refused.
pub fn secure_boot_agrees(v: &Value, who: &str) {
    let sb = &v["secure_boot"];
    assert_eq!(
        (sb["predicted"].as_str(), sb["observed"].as_str()),
        (Some(who), Some(who)),
        "{sb}"
    );
    assert_eq!(sb["agrees"], true, "{sb}");
}

/// The failure stage and cause of a report that must have failed.
pub fn failure(code: i32, v: &Value) -> (String, String) {
    assert_eq!(
        v["result"]["outcome"],
        "failed",
        "{}\nconsole: {}",
        serde_json::to_string_pretty(&v["result"]).unwrap(),
        console(v)
    );
    assert_eq!(code, 1);
    (
        v["result"]["stage"]["stage"].as_str().unwrap().to_string(),
        v["result"]["cause"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
    )
}

/// `check --json --secure-boot=STORE` on `img`: its report.
pub fn check_secure_boot(img: impl AsRef<Path>, store: &str) -> Value {
    let out = crate::common::bootproof(&[
        "check",
        "--json",
        &format!("--secure-boot={store}"),
        img.as_ref().to_str().unwrap(),
    ]);
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The outcome and evidence of rule `id` in a check report.
pub fn finding(report: &Value, id: &str) -> (String, String) {
    let f = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["rule"]["id"] == id || f["id"] == id)
        .unwrap_or_else(|| panic!("{id} in the report"));
    (
        f["outcome"].as_str().unwrap().to_string(),
        f["evidence"].to_string(),
    )
}
