//! A guest that stops at its login prompt — as a real image does, with
//! cloud-init writing on the prompt's line — is booted once the prompt is
//! seen, not after the whole deadline; a failed unit on the way is a
//! problem of that boot, and `--strict` fails it. An image that says it
//! is ready on bootproof's readiness port ends the boot there.

mod common;

use common::*;
use serde_json::Value;
use std::process::Command;

#[test]
fn a_login_prompt_ends_the_boot() {
    let img = variant("login", "debian-grub-arm64.raw", "waits-at-login");
    // A second cpio archive after the image's initramfs replaces /init
    // (the kernel unpacks them in order): print a prompt with cloud-init
    // output on its line, then wait forever like a getty.
    let dir = img.parent().unwrap().join("init-override");
    std::fs::create_dir_all(&dir).unwrap();
    let init = dir.join("init");
    std::fs::write(
        &init,
        "#!/bin/busybox sh\n/bin/busybox echo '[FAILED] Failed to start demo.service - Demo.'\n/bin/busybox echo\n/bin/busybox echo 'Debian GNU/Linux 12 debian ttyAMA0'\n/bin/busybox echo\n/bin/busybox echo 'debian login: [   25.3] cloud-init[612]: Cloud-init v. 22.4.2 finished'\nexec /bin/busybox sleep 100000\n",
    )
    .unwrap();
    ok(Command::new("chmod").arg("755").arg(&init));
    let list = Command::new("sh")
        .args(["-c", "echo init | cpio -o -H newc --quiet | gzip -n"])
        .current_dir(&dir)
        .output()
        .unwrap();
    assert!(list.status.success());
    let i = img.to_str().unwrap();
    let boot_dir = String::from_utf8(bootproof(&["ls", i, "2:/boot"]).stdout).unwrap();
    let name = boot_dir
        .lines()
        .find(|l| l.starts_with("initrd.img-"))
        .unwrap()
        .to_string();
    let mut initrd = bootproof(&["cat", i, &format!("2:/boot/{name}")]).stdout;
    initrd.extend(list.stdout);
    let new = dir.join("initrd");
    std::fs::write(&new, initrd).unwrap();
    edit_root(
        &img,
        &format!("cd /boot\nrm {name}\nwrite {} {name}\n", new.display()),
    );

    let out = bootproof(&["boot", "--json", "--timeout", "600", i]);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["result"]["outcome"], "booted", "{}", v["result"]);
    assert_eq!(out.status.code(), Some(0));
    let stages: Vec<&str> = v["result"]["stages"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| s["stage"].as_str())
        .collect();
    assert_eq!(stages.last(), Some(&"login-prompt"), "{stages:?}");
    // Ended at the prompt, not at the deadline (the guest never powers off).
    assert!(
        v["result"]["elapsed"].as_f64().unwrap() < v["timeout_secs"].as_f64().unwrap(),
        "{}",
        v["result"]
    );
    // The failed unit is the boot's problem: reported, and fatal with --strict.
    assert_eq!(
        v["result"]["problems"][0]["kind"], "failed-unit",
        "{}",
        v["result"]
    );
    assert!(v["result"]["problems"][0]["line"]
        .as_str()
        .unwrap()
        .contains("demo.service"));
    let strict = bootproof(&["boot", "--json", "--strict", "--timeout", "600", i]);
    let v: Value = serde_json::from_slice(&strict.stdout).unwrap();
    assert_eq!(v["result"]["outcome"], "booted");
    assert_eq!(strict.status.code(), Some(1));
}

/// Debian's real cloud image with its serial getty masked (no login
/// prompt ever) and a systemd unit that writes `READY=1` to bootproof's
/// readiness port: the boot ends as booted when the image says it is
/// ready, not at the deadline.
#[test]
fn the_images_readiness_signal_ends_the_boot() {
    let dir = scratch("login", "ready-signal");
    let img = dir.join("disk.raw");
    ok(Command::new("cp")
        .arg("--sparse=always")
        .arg(cloud_image("amd64"))
        .arg(&img));
    let unit = dir.join("bootproof-ready.service");
    std::fs::write(
        &unit,
        "[Unit]\nDescription=Tell bootproof the image is ready\nAfter=multi-user.target\n\n\
         [Service]\nType=oneshot\n\
         ExecStart=/bin/sh -c 'echo READY=1 > /dev/virtio-ports/org.bootproof.ready'\n\n\
         [Install]\nWantedBy=multi-user.target\n",
    )
    .unwrap();
    edit_root(
        &img,
        &format!(
            "cd /etc/systemd/system\nwrite {} bootproof-ready.service\n\
             symlink /etc/systemd/system/multi-user.target.wants/bootproof-ready.service /etc/systemd/system/bootproof-ready.service\n\
             symlink /etc/systemd/system/serial-getty@ttyS0.service /dev/null\n",
            unit.display()
        ),
    );
    let out = bootproof(&["boot", "--json", "--timeout", "900", img.to_str().unwrap()]);
    let v: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
    let r = &v["result"];
    assert_eq!(r["outcome"], "booted", "{r:#}");
    // Debian 12's cloud-init disables itself on x86_64 when it finds no
    // datasource (boot_seed.rs has the image that searches): no seed.
    let seed = &v["seed"];
    assert_eq!(seed["attached"], false, "{seed}");
    assert!(
        seed["reason"]
            .as_str()
            .unwrap()
            .contains("ds-identify's default on x86_64"),
        "{seed}"
    );
    let stages: Vec<&str> = r["stages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["stage"].as_str().unwrap())
        .collect();
    assert_eq!(stages.last(), Some(&"ready"), "{stages:?}");
    assert!(
        stages.contains(&"userspace-started") && !stages.contains(&"login-prompt"),
        "{stages:?}"
    );
    let ready = r["stages"].as_array().unwrap().last().unwrap();
    assert_eq!(ready["line"], "READY=1");
    // Ended at the signal (plus the settling seconds), far before the deadline.
    assert!(
        r["elapsed"].as_f64().unwrap() < ready["host_time"].as_f64().unwrap() + 30.0,
        "{r:#}"
    );
}
