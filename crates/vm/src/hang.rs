//! Telling a hung guest from a slow one, so a boot that will never finish
//! ends long before its deadline and says where it stopped.
//!
//! A booting Linux kernel prints continuously from `Linux version` until
//! it runs init: seconds of silence there are normal under emulation,
//! minutes are not. The rule is deliberately narrow: it fires only while
//! the last stage is `kernel-started`, only when the console explains no
//! wait ([`Classifier::silence`]: a root device awaited with `rootwait`, a
//! console lost after the EFI stub; those are verdicts, not hangs), and
//! only after a third of the boot's deadline (at least a minute) of
//! silence. Quiet kernels print nothing after the EFI stub and are covered
//! by the same wide margin.
//!
//! Under TCG emulation a multi-threaded QEMU very rarely stops a guest in
//! early kernel boot (seen here once in some hundred boots of the same
//! Debian kernel, silent after `IP idents hash table entries`): the same
//! image boots on the next try. [`retry_reason`] is how `run` and `verify`
//! decide to boot such a cell once more, keeping the first attempt's
//! outcome in the report.

use crate::classify::{Classifier, Stage};
use crate::outcome::BootOutcome;
use std::time::Duration;

/// The shortest silence called a hang.
const MIN_SILENCE: Duration = Duration::from_secs(60);

/// How long a kernel may stay silent before the boot is called hung, for
/// a boot with this deadline (`None`: the deadline comes first).
pub fn silence_limit(deadline: Duration) -> Option<Duration> {
    let limit = (deadline / 3).max(MIN_SILENCE);
    (limit < deadline).then_some(limit)
}

/// The hung outcome, when the console has been silent for `silent` and
/// the rule above applies.
pub fn check(classifier: &Classifier, silent: Duration, limit: Duration) -> Option<BootOutcome> {
    let last = classifier.events().last().map(|e| &e.stage)?;
    if silent < limit
        || *last != Stage::KernelStarted
        || classifier.silence().is_some()
        || classifier.waiting_for_key().is_some()
    {
        return None;
    }
    Some(BootOutcome::Hung {
        last: Some(last.clone()),
        silent_secs: silent.as_secs(),
        after: classifier.last_line().to_string(),
    })
}

/// Why a boot should be tried once more: it hung in the kernel under TCG
/// (QEMU's emulation, not the image, is then the likelier culprit). Under
/// KVM a hang is the image's and is reported as it is.
pub fn retry_reason(outcome: &BootOutcome, tcg: bool) -> Option<String> {
    match outcome {
        BootOutcome::Hung {
            silent_secs, after, ..
        } if tcg => Some(format!(
            "the kernel hung under TCG emulation (nothing on the console for {silent_secs}s \
             after \"{after}\"); booted again, since QEMU's emulation rarely hangs this way \
             and the image's own hang repeats"
        )),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fed(console: &str) -> Classifier {
        let mut c = Classifier::new();
        c.feed_at(console.as_bytes(), 1.0);
        c
    }

    const KERNEL: &str = "BdsDxe: starting Boot0001\r\nWelcome to GRUB!\r\n\
        [    0.000000] Linux version 6.1.0-57-amd64 (debian-kernel@lists.debian.org)\r\n\
        [    1.099420] IP idents hash table entries: 16384 (order: 5, 131072 bytes, linear)\r\n";

    #[test]
    fn the_limit_is_a_third_of_the_deadline_and_at_least_a_minute() {
        assert_eq!(
            silence_limit(Duration::from_secs(600)),
            Some(Duration::from_secs(200))
        );
        assert_eq!(
            silence_limit(Duration::from_secs(120)),
            Some(Duration::from_secs(60))
        );
        assert_eq!(silence_limit(Duration::from_secs(60)), None);
    }

    #[test]
    fn a_kernel_silent_past_the_limit_is_hung_and_names_its_last_line() {
        let c = fed(KERNEL);
        let limit = Duration::from_secs(200);
        assert_eq!(check(&c, Duration::from_secs(199), limit), None);
        let Some(BootOutcome::Hung {
            last,
            silent_secs,
            after,
        }) = check(&c, Duration::from_secs(201), limit)
        else {
            panic!("not hung");
        };
        assert_eq!(last, Some(Stage::KernelStarted));
        assert_eq!(silent_secs, 201);
        assert!(after.contains("IP idents hash table"), "{after}");
    }

    #[test]
    fn explained_silence_and_later_stages_are_not_hangs() {
        let long = Duration::from_secs(1000);
        let limit = Duration::from_secs(200);
        // Waiting for a root device that never comes: a verdict, not a hang.
        let waiting = fed(&format!(
            "{KERNEL}[    2.000000] Waiting for root device /dev/vdb1...\r\n"
        ));
        assert_eq!(check(&waiting, long, limit), None);
        assert!(waiting.silence().unwrap().contains("root device"));
        // Init ran: userspace's own silences are not the kernel's.
        let init = fed(&format!("{KERNEL}[    4.6] Run /init as init process\r\n"));
        assert_eq!(check(&init, long, limit), None);
        // Still in the firmware or GRUB.
        assert_eq!(check(&fed("Welcome to GRUB!\r\n"), long, limit), None);
    }

    #[test]
    fn only_a_hang_under_tcg_is_retried() {
        let hung = check(
            &fed(KERNEL),
            Duration::from_secs(300),
            Duration::from_secs(200),
        )
        .unwrap();
        assert!(retry_reason(&hung, true).unwrap().contains("IP idents"));
        assert_eq!(retry_reason(&hung, false), None);
        let timeout = BootOutcome::Timeout {
            last: None,
            reason: None,
        };
        assert_eq!(retry_reason(&timeout, true), None);
    }
}
