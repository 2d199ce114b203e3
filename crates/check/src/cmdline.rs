//! Rules on the kernel command line: the serial console, no x86-only
//! tokens on arm64, no bare words that would reach init.

use super::*;

impl Ctx<'_> {
    pub(super) fn cmdline_rules(&mut self) {
        let Some(cmdline) = self.cmdline().map(str::to_string) else {
            for r in [&rules::CONSOLE, &rules::X86_TOKENS, &rules::BARE_TOKENS] {
                self.skip(r, "no boot entry");
            }
            return;
        };
        let want = self.arch.console();
        let consoles: Vec<&str> = cmdline
            .split_whitespace()
            .filter_map(|w| w.strip_prefix("console="))
            .collect();
        if consoles.iter().any(|c| c.split(',').next() == Some(want)) {
            self.pass(&rules::CONSOLE, format!("console={want}"));
        } else {
            self.fail(
                &rules::CONSOLE,
                vec![format!(
                    "consoles on the command line: {}",
                    if consoles.is_empty() {
                        "none".to_string()
                    } else {
                        consoles.join(", ")
                    }
                )],
            );
        }
        if self.arch == Arch::Aarch64 {
            let x86: Vec<String> = cmdline
                .split_whitespace()
                .filter(|w| {
                    w.starts_with("earlyprintk=")
                        || *w == "clocksource=kvm-clock"
                        || *w == "no_timer_check"
                        || *w == "noreplace-smp"
                        || w.strip_prefix("console=")
                            .is_some_and(|c| c.starts_with(Arch::X86_64.console()))
                })
                .map(str::to_string)
                .collect();
            if x86.is_empty() {
                self.pass(&rules::X86_TOKENS, "none found");
            } else {
                self.fail(&rules::X86_TOKENS, x86);
            }
        } else {
            self.skip(&rules::X86_TOKENS, "applies to aarch64 images");
        }
        const KNOWN: &[&str] = &[
            "ro",
            "rw",
            "quiet",
            "splash",
            "nosplash",
            "single",
            "emergency",
            "rescue",
            "debug",
            "nomodeset",
            "noapic",
            "nolapic",
            "nosmp",
            "noacpi",
            "earlycon",
            "nokaslr",
            "nopti",
            "nosmt",
            "noresume",
            "rootwait",
            "rhgb",
            "fastboot",
            "1",
            "2",
            "3",
            "4",
            "5",
            "S",
            "s",
        ];
        let mut bare = Vec::new();
        for w in cmdline.split_whitespace() {
            if w == "--" {
                break; // the rest is meant for init
            }
            // `$variables` are boot.cmdline-vars' finding; report each cause once.
            if !w.contains('=') && !w.contains('$') && !KNOWN.contains(&w) {
                bare.push(w.to_string());
            }
        }
        if bare.is_empty() {
            self.pass(&rules::BARE_TOKENS, "none found");
        } else {
            self.fail(
                &rules::BARE_TOKENS,
                bare.into_iter()
                    .map(|w| format!("`{w}` would reach init's argv"))
                    .collect(),
            );
        }
    }
}
