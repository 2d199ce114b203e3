//! `bootproof boot` of a cloud-init image that came without a seed. Where
//! the image's cloud-init would search for a datasource (here: Debian's
//! real amd64 cloud image given ds-identify's aarch64 default,
//! `notfound=enabled`, in /etc/cloud/ds-identify.cfg; the arm64 image
//! itself takes 30+ minutes to build), bootproof attaches an empty
//! NoCloud seed and the search never happens; with `--no-seed` cloud-init
//! waits on the clouds' metadata services as it would on its own. The
//! unmodified amd64 image (cloud-init disables itself with no datasource)
//! gets no seed: `boot_login.rs` checks that.

mod common;

use common::*;
use serde_json::Value;
use std::path::PathBuf;
use std::process::Command;

/// The cloud image with the policy that makes cloud-init search (in a
/// scratch directory that lives as long as the returned guard).
fn searching_image(name: &str) -> (Scratch, PathBuf) {
    let dir = scratch("seed", name);
    let img = dir.join("disk.raw");
    ok(Command::new("cp")
        .arg("--sparse=always")
        .arg(cloud_image("amd64"))
        .arg(&img));
    let cfg = dir.join("ds-identify.cfg");
    std::fs::write(
        &cfg,
        "policy: search,found=all,maybe=none,notfound=enabled\n",
    )
    .unwrap();
    edit_root(
        &img,
        &format!("cd /etc/cloud\nwrite {} ds-identify.cfg\n", cfg.display()),
    );
    (dir, img)
}

/// `boot --json` with `extra` arguments: the report and the console log.
fn boot(img: &std::path::Path, extra: &[&str]) -> (Value, String) {
    let mut args = vec!["boot", "--json", "--timeout", "900"];
    args.extend_from_slice(extra);
    args.push(img.to_str().unwrap());
    let out = bootproof(&args);
    let v: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
    assert_eq!(v["result"]["outcome"], "booted", "{:#}", v["result"]);
    let stages = v["result"]["stages"].as_array().unwrap();
    assert_eq!(
        stages.last().unwrap()["stage"],
        "login-prompt",
        "{stages:?}"
    );
    let log = std::fs::read(v["result"]["console_log"].as_str().unwrap()).unwrap();
    (v, String::from_utf8_lossy(&log).into_owned())
}

/// EC2's metadata address: cloud-init's search reached the network datasources.
const METADATA: &str = "169.254.169.254";

#[test]
fn an_empty_seed_ends_the_datasource_search() {
    let (_dir, img) = searching_image("seeded");
    let (v, console) = boot(&img, &["--keep"]);
    let seed = &v["seed"];
    assert_eq!(seed["attached"], true, "{seed}");
    assert_eq!(seed["kind"], "nocloud");
    let reason = seed["reason"].as_str().unwrap();
    assert!(reason.contains("/etc/cloud/ds-identify.cfg"), "{reason}");
    // cloud-init ran (the seed is a datasource) and never looked further.
    assert!(console.contains("running 'init'"), "cloud-init did not run");
    assert!(!console.contains(METADATA), "the search still happened");
    // The volume, read by independent tools: labelled CIDATA, an instance
    // id and no user data.
    let disk = PathBuf::from(v["run_dir"].as_str().unwrap()).join("seed-cidata.img");
    let label = Command::new("blkid")
        .args(["-o", "value", "-s", "LABEL"])
        .arg(&disk)
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&label.stdout).trim(), "CIDATA");
    let mtype = |name: &str| {
        let out = Command::new("mtype")
            .arg("-i")
            .arg(&disk)
            .arg(format!("::{name}"))
            .output()
            .unwrap();
        assert!(out.status.success(), "mtype {name}");
        String::from_utf8(out.stdout).unwrap()
    };
    assert!(mtype("meta-data").contains("instance-id: bootproof-boot"));
    assert_eq!(mtype("user-data"), "");
    std::fs::remove_dir_all(v["run_dir"].as_str().unwrap()).unwrap();
}

/// Long (cloud-init waits minutes on the clouds' metadata services):
/// `scripts/test.sh --long`.
#[test]
#[ignore = "long: cloud-init's datasource search; scripts/test.sh --long runs it"]
fn without_the_seed_cloud_init_searches() {
    let (_dir, img) = searching_image("unseeded");
    let (v, console) = boot(&img, &["--no-seed"]);
    assert_eq!(v["seed"]["attached"], false, "{}", v["seed"]);
    assert!(v["seed"]["reason"].as_str().unwrap().contains("--no-seed"));
    assert!(
        console.contains(METADATA),
        "cloud-init did not search the network datasources"
    );
}
