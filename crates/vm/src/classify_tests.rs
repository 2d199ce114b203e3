//! Tests of the console classifier (`classify.rs`).
use super::*;

fn run(log: &str, chunk: usize) -> Classifier {
    let mut c = Classifier::new();
    for piece in log.as_bytes().chunks(chunk) {
        c.feed(piece);
    }
    c
}

#[test]
fn silence_after_exit_boot_services_is_explained() {
    let mut c = Classifier::default();
    c.feed(b"EFI stub: Booting Linux Kernel...\r\nEFI stub: Generating empty DTB\r\nEFI stub: Exiting boot services...\r\n");
    let why = c.silence().unwrap();
    assert!(why.contains("printed nothing after the EFI stub exited boot services"));
    assert!(why.contains("no device tree"));
    // With a firmware device tree, only the console half applies.
    let mut c = Classifier::default();
    c.feed(b"EFI stub: Booting Linux Kernel...\r\nEFI stub: Exiting boot services...\r\n");
    assert!(!c.silence().unwrap().contains("device tree"));
    // Once the kernel speaks, there is nothing to explain.
    c.feed(b"[    0.000000] Booting Linux on physical CPU 0x0\r\n");
    assert_eq!(c.silence(), None);
}

#[test]
fn recorded_direct_boot_reaches_init_and_powers_off() {
    let log = include_str!("../../../tests/boot-logs/aarch64-direct-init-poweroff.log");
    for chunk in [1, 7, 4096] {
        let c = run(log, chunk);
        let stages: Vec<&Stage> = c.events().iter().map(|e| &e.stage).collect();
        assert_eq!(stages.first(), Some(&&Stage::FirmwareStarted), "{stages:?}");
        assert!(
            stages.contains(&&Stage::KernelStarted)
                && stages.contains(&&Stage::InitReached)
                && stages.contains(&&Stage::PoweredOff),
            "{stages:?}"
        );
        assert_eq!(c.outcome(), Outcome::Booted);
        let init = c
            .events()
            .iter()
            .find(|e| e.stage == Stage::InitReached)
            .unwrap();
        assert!(
            init.guest_time.unwrap() > 1.0 && init.guest_time.unwrap() < 60.0,
            "{init:?}"
        );
    }
}

#[test]
fn recorded_firmware_boot_without_removable_path_ends_in_the_shell() {
    let log = include_str!("../../../tests/boot-logs/aarch64-firmware-no-removable-path.log");
    let c = run(log, 13);
    let stages: Vec<&Stage> = c.events().iter().map(|e| &e.stage).collect();
    assert!(
        matches!(stages[1], Stage::BootOptionFailed(s) if s.contains("UEFI Misc Device")),
        "{stages:?}"
    );
    assert_eq!(
        c.outcome(),
        Outcome::Failed {
            stage: Stage::UefiShell
        }
    );
    let cause = c.cause().unwrap();
    assert!(
        cause.starts_with("no boot loader at the removable path") && cause.contains("Not Found"),
        "{cause}"
    );
}

#[test]
fn failure_kinds() {
    let cases: &[(&str, Outcome)] = &[
        ("Welcome to GRUB!\r\n\r\nerror: file `/boot/vmlinuz-6.1' not found.\r\n", Outcome::Failed { stage: Stage::GrubFileNotFound("/boot/vmlinuz-6.1".into()) }),
        // A missing module is not fatal: GRUB loads Linux next.
        (
            "  Booting `Debian GNU/Linux'\r\n\r\nerror: file `/boot/grub/x86_64-efi/all_video.mod' not found.\r\nLoading Linux 6.1.0-57-amd64 ...\r\nLoading initial ramdisk ...\r\n\r\nPress any key to continue...\r\n[    1.0] Linux version 6.1\n\nvm login: ",
            Outcome::Booted,
        ),
        ("error: unknown filesystem.\r\nEntering rescue mode...\r\ngrub rescue> ", Outcome::Failed { stage: Stage::GrubRescue }),
        ("Welcome to GRUB!\r\n\x1b[0merror: can't find command `blscfg'.\r\n\x1b[02;24HGNU GRUB  version 2.06\r\n\r\ngrub> ", Outcome::Failed { stage: Stage::GrubPrompt }),
        (
            "[    1.2] Booting Linux on physical CPU 0x0\n[    3.4] Kernel panic - not syncing: VFS: Unable to mount root fs on unknown-block(0,0)\n",
            Outcome::Failed { stage: Stage::RootNotFound("VFS: Unable to mount root fs on unknown-block(0,0)".into()) },
        ),
        ("Gave up waiting for root file system device.  Common problems:\n", Outcome::Failed { stage: Stage::RootNotFound("Gave up waiting for root file system device.  Common problems:".into()) }),
        ("\x1b[10;17HVerification failed: (0x1A) Security Violation\x1b[11;17H", Outcome::Failed { stage: Stage::SecureBootRejected("Verification failed: (0x1A) Security Violation".into()) }),
        // Debian's GRUB started by the firmware, not shim, under Secure Boot.
        ("  Booting `Debian GNU/Linux'\r\nLoading Linux 6.1.0-57-amd64 ...\r\nerror: shim_lock protocol not found.\r\n", Outcome::Failed { stage: Stage::SecureBootRejected("error: shim_lock protocol not found.".into()) }),
        ("Something has gone seriously wrong: SBAT self-check failed: Security Policy Violation\r\n", Outcome::Failed { stage: Stage::SecureBootRejected("Something has gone seriously wrong: SBAT self-check failed: Security Policy Violation".into()) }),
        ("[    2.0] Kernel panic - not syncing: No working init found.\n", Outcome::Failed { stage: Stage::KernelPanic("No working init found.".into()) }),
        ("You are in emergency mode. After logging in, type \"journalctl -xb\"\n", Outcome::Failed { stage: Stage::EmergencyMode }),
        ("\nDebian GNU/Linux 12 vm ttyAMA0\n\nvm login: ", Outcome::Booted),
        // cloud-init writes on the prompt's line.
        ("\nDebian GNU/Linux 12 debian ttyS0\n\ndebian login: [   25.3] cloud-init[612]: Cloud-init v. 22.4.2 finished\n", Outcome::Booted),
        ("Last login: Mon Nov 30 09:00:00 UTC 2026 on ttyS0\n", Outcome::Stalled { last: None }),
        // `quiet`: no kernel lines, but only userspace powers a guest down.
        ("Welcome to GRUB!\r\nLoading Linux 6.1 ...\r\nbootproof-init\n[    9.1] reboot: Power down\n", Outcome::Booted),
        ("[    1.0] Linux version 6.1\n[    2.0] reboot: Restarting system\n", Outcome::Stalled { last: Some(Stage::PoweredOff) }),
        ("UEFI firmware (version  built at 1)\n", Outcome::Stalled { last: Some(Stage::FirmwareStarted) }),
        ("", Outcome::NoOutput),
    ];
    for (log, want) in cases {
        assert_eq!(&run(log, 5).outcome(), want, "{log:?}");
    }
    let oops = run("[    5.1] Unable to handle kernel NULL pointer dereference at virtual address 0000000000000000\n[    5.2] Internal error: Oops: 96000004 [#1] SMP\n[    5.3] Kernel panic - not syncing: Attempted to kill init! exitcode=0x0000000b\n", 11);
    assert_eq!(
        oops.cause().unwrap(),
        "Attempted to kill init! exitcode=0x0000000b (after: [    5.1] Unable to handle kernel NULL pointer dereference at virtual address 0000000000000000)"
    );
    let grub = run("error: can't find command `blscfg'.\r\ngrub> ", 3);
    assert_eq!(
        grub.cause().unwrap(),
        "GRUB said: can't find command `blscfg'."
    );
    let ovmf = run(
        "\x1b[2J\x1b[01;01HBdsDxe: starting Boot0001 \"UEFI Misc Device\"\r\n",
        4,
    );
    assert_eq!(
        ovmf.events()[0].stage,
        Stage::FirmwareStarted,
        "implied by the boot manager"
    );
}

#[test]
fn grub_menu_without_countdown_waits_for_a_key() {
    let menu = "\x1b[2J\x1b[01;01H\x1b[05;30HGNU GRUB  version 2.06\x1b[07;03H*Debian GNU/Linux\x1b[18;03H      Use the ^ and v keys to select which entry is highlighted.\x1b[19;03H      Press enter to boot the selected OS, `e' to edit the commands\x1b[20;03H";
    let c = run(menu, 9);
    assert_eq!(c.events()[0].stage, Stage::GrubStarted);
    assert!(c.waiting_for_key().is_some());
    let with_timeout =
        format!("{menu}   The highlighted entry will be executed automatically in 4s.\x1b[21;03H");
    assert!(run(&with_timeout, 9).waiting_for_key().is_none());
    let booted =
        format!("{menu}\x1b[2J\x1b[01;01HLoading Linux\r\nEFI stub: Booting Linux Kernel...\r\n");
    assert!(run(&booted, 9).waiting_for_key().is_none());
}

#[test]
fn shim_error_dialog_waits_for_a_key_even_without_its_message() {
    let dialog = "BdsDxe: starting Boot0001 \"UEFI Misc Device\"\r\n\x1b[01;01H\u{b3}                ERROR                \u{b3}\x1b[04;01H\u{b3}   \x1b[05;01H\u{b3}  \u{b3}\x1b[25;39H\u{b3} OK \u{b3}";
    let c = run(dialog, 6);
    assert!(c.waiting_for_key().unwrap().contains("error dialog"));
}

#[test]
fn hostile_output_is_bounded() {
    let mut c = Classifier::new();
    let junk = vec![b'A'; 1 << 20];
    c.feed(&junk);
    c.feed(b"\n");
    assert!(c.partial.is_empty());
    for _ in 0..5000 {
        c.feed(b"[ 1.0] Linux version x\n");
    }
    assert_eq!(c.events().len(), 1, "a repeated stage is recorded once");
    assert_eq!(
        strip_ansi("\x1b[0m\x1b[=3hShell> "),
        "\x1b[=3hShell> ".replace("\x1b[=3h", "")
    );
}

/// A whole real boot: Debian 12's cloud image (systemd, cloud-init, GRUB,
/// initramfs-tools) under OVMF, recorded by `bootproof boot` (see
/// tests/boot-logs/README.md). Its login prompt shares a line with the
/// kernel's messages, lines end in CRLF and carry colour escapes.
#[test]
fn recorded_cloud_image_boot_shows_every_stage_in_order() {
    let log = include_str!("../../../tests/boot-logs/x86_64-debian-cloud-login.log");
    for chunk in [1, 61, 4096, log.len()] {
        let c = run(log, chunk);
        let stages: Vec<&Stage> = c.events().iter().map(|e| &e.stage).collect();
        let want = [
            Stage::FirmwareStarted,
            Stage::BootOptionStarted(String::new()),
            Stage::GrubStarted,
            Stage::KernelStarted,
            Stage::InitReached,
            Stage::UserspaceStarted,
            Stage::LoginPrompt,
        ];
        assert_eq!(stages.len(), want.len(), "chunk {chunk}: {stages:?}");
        for (got, want) in stages.iter().zip(&want) {
            assert_eq!(
                std::mem::discriminant(*got),
                std::mem::discriminant(want),
                "chunk {chunk}: {stages:?}"
            );
        }
        assert_eq!(c.outcome(), Outcome::Booted, "chunk {chunk}");
        let at = |s: Stage| {
            c.events()
                .iter()
                .find(|e| e.stage == s)
                .and_then(|e| e.guest_time)
        };
        // initramfs from 11.7 s to the real root's systemd at 21.1 s.
        assert_eq!(at(Stage::InitReached), Some(11.729915));
        assert_eq!(at(Stage::UserspaceStarted), Some(21.082944));
        let login = c
            .events()
            .iter()
            .find(|e| e.stage == Stage::LoginPrompt)
            .unwrap();
        // Seen as the prompt alone when it arrives before the kernel's
        // message, else as the shared line.
        assert!(
            login.line.starts_with("bootproof-cloud login:"),
            "chunk {chunk}: {}",
            login.line
        );
        assert!(c.problems().is_empty(), "{:?}", c.problems());
    }
}

/// The same cloud image with `root=UUID=` naming no disk: initramfs-tools
/// waits, gives up and drops to its shell (recorded by `bootproof prove`,
/// which predicted exactly that).
#[test]
fn recorded_cloud_image_with_root_nowhere_fails_in_the_initramfs() {
    let log = include_str!("../../../tests/boot-logs/x86_64-debian-cloud-root-nowhere.log");
    for chunk in [1, 97, log.len()] {
        let c = run(log, chunk);
        let stages: Vec<&Stage> = c.events().iter().map(|e| &e.stage).collect();
        assert!(
            stages.contains(&&Stage::InitReached)
                && !stages.contains(&&Stage::UserspaceStarted)
                && !stages.contains(&&Stage::LoginPrompt),
            "chunk {chunk}: {stages:?}"
        );
        let Outcome::Failed {
            stage: Stage::RootNotFound(why),
        } = c.outcome()
        else {
            panic!("chunk {chunk}: {:?}", c.outcome());
        };
        assert!(why.contains("Gave up waiting for root"), "{why}");
        let root = stages
            .iter()
            .filter(|s| matches!(s, Stage::RootNotFound(_)))
            .count();
        assert_eq!(root, 1, "one stage for the initramfs's two messages");
    }
}

/// systemd cuts long unit names through their colour codes; the text
/// after the cut survives (the device name is the evidence).
#[test]
fn escape_sequences_cut_short_keep_the_text_after_them() {
    let line =
        "\x1b[0;1;31m TIME \x1b[0m] Timed out waiting for device \x1b[0;1;\u{2026}dc0de-0000.";
    assert_eq!(
        strip_ansi(line),
        " TIME ] Timed out waiting for device \u{2026}dc0de-0000."
    );
    assert_eq!(strip_ansi("a\x1b[1;39mb\x1b[0m"), "ab");
    assert_eq!(strip_ansi("\x1b[?25l\x1b[2J\x1b[01;01Hx"), "x");
}

/// The cloud image with an `/etc/fstab` line for a disk the VM does not
/// have (no `nofail`): systemd waits 90 s for it, then emergency mode
/// (recorded by `bootproof prove`, which predicted it from `os.fstab`).
#[test]
fn recorded_cloud_image_with_a_missing_fstab_device_ends_in_emergency_mode() {
    let log = include_str!("../../../tests/boot-logs/x86_64-debian-cloud-fstab-missing-device.log");
    for chunk in [1, 256, log.len()] {
        let c = run(log, chunk);
        let stages: Vec<&Stage> = c.events().iter().map(|e| &e.stage).collect();
        assert!(
            stages.contains(&&Stage::UserspaceStarted) && !stages.contains(&&Stage::LoginPrompt),
            "chunk {chunk}: {stages:?}"
        );
        assert_eq!(
            c.outcome(),
            Outcome::Failed {
                stage: Stage::EmergencyMode
            }
        );
        let kinds: Vec<&str> = c.problems().iter().map(|p| p.kind).collect();
        assert!(
            kinds.contains(&"device-timeout") && kinds.contains(&"emergency-shell"),
            "{kinds:?}"
        );
        let timeout = &c.problems()[0].line;
        assert!(
            timeout.contains("Timed out waiting for device") && timeout.contains("dc0de-0000"),
            "{timeout}"
        );
    }
}

#[test]
fn riscv_edk2_banner_starts_the_firmware_stage() {
    // RISC-V EDK2 prints its own banner and no BdsDxe lines (Debian 13).
    assert_eq!(
        crate::stage::classify_line(
            "\x1b[2J\x1b[09DRISC-V EDK2 firmware version 2025.02-8+deb13u1"
        ),
        Some(Stage::FirmwareStarted)
    );
}

#[test]
fn a_boot_option_failure_split_over_two_lines_is_joined() {
    // RISC-V EDK2 (Debian 13) with an aarch64 binary at BOOTRISCV64.EFI.
    let mut c = Classifier::new();
    c.feed(b"BdsDxe: failed to load Boot0001 \"\r\nUEFI Misc Device\" from PciRoot(0x0)/Pci(0x1,0x0): Unsupported\r\n");
    c.feed(b"\x1b[2J\x1b[01;01HUEFI Interactive Shell v2.2\r\nShell> ");
    assert_eq!(
        c.outcome(),
        Outcome::Failed {
            stage: Stage::UefiShell
        }
    );
    let cause = c.cause().unwrap();
    assert!(
        cause.contains("Unsupported") && cause.contains("UEFI Misc Device"),
        "{cause}"
    );
}
