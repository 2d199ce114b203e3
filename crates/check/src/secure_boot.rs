//! Secure Boot, predicted: each stage of the chain checked as the thing
//! that verifies it would check it (`bootproof_boot::trust`): the firmware
//! (db/dbx) the removable loader; shim (db and its vendor certificate,
//! after dbx and its vendor dbx) the loader it starts and, through its
//! protocol, the kernel.

use super::{rules, Ctx};
use bootproof_boot::pe::{EfiKind, PeInfo};
use bootproof_boot::signing::MAX_EFI_BINARY;
use bootproof_boot::trust::{decide, shim_vendor_lists, FirmwareStore, SignatureList, Verdict};
use bootproof_inspect::FileRef;

const RULES: [&rules::Rule; 3] = [&rules::SB_FIRST, &rules::SB_SECOND, &rules::SB_KERNEL];

impl Ctx<'_> {
    pub(super) fn secure_boot_rules(&mut self, store: Option<&FirmwareStore>) {
        let Some(store) = store else {
            for r in RULES {
                self.skip(r, "no trust store given (`check --secure-boot[=STORE]` predicts a Secure Boot boot)");
            }
            return;
        };
        let Some(first) = self.chain.removable.clone() else {
            for r in RULES {
                self.skip(r, "no loader at the removable path");
            }
            return;
        };
        let Ok(loader) = self.img.read(&first, MAX_EFI_BINARY) else {
            self.fail(&rules::SB_FIRST, vec![format!("{first} cannot be read")]);
            return self.skip_after(&rules::SB_FIRST);
        };
        match decide(&loader, &[&store.db], &[&store.dbx]) {
            Verdict::Accepted { signature, by } => self.pass(
                &rules::SB_FIRST,
                format!(
                    "{first}: {}, under {}",
                    accepted(signature, &by),
                    store.name
                ),
            ),
            Verdict::Rejected(why) => {
                self.fail(
                    &rules::SB_FIRST,
                    vec![format!(
                        "{first}: {why}; the firmware ({}) refuses it",
                        store.name
                    )],
                );
                return self.skip_after(&rules::SB_FIRST);
            }
        }
        // Who verifies what comes next: shim with its own lists, else the firmware.
        let loader_kind = self.chain.removable_info.as_ref().map(|i| i.kind);
        let shim = loader_kind == Some(EfiKind::Shim);
        let (allow, deny) = match shim.then(|| vendor_lists(&loader)) {
            Some(Ok((a, d))) => (a, d),
            Some(Err(e)) => {
                self.fail(
                    &rules::SB_SECOND,
                    vec![format!("{first}: shim's .vendor_cert: {e}")],
                );
                return self.skip_after(&rules::SB_SECOND);
            }
            None => Default::default(),
        };
        let verifier = if shim { "shim" } else { "the firmware" };
        let allow_lists = [&store.db, &allow];
        let deny_lists = [&store.dbx, &deny];
        let judge = |data: &[u8]| decide(data, &allow_lists, &deny_lists);
        match self.chain.second_stage.clone() {
            None => self.skip(
                &rules::SB_SECOND,
                "the firmware starts the loader itself: no second stage",
            ),
            Some(second) => {
                if !self.verify_stage(&rules::SB_SECOND, &second, verifier, &judge) {
                    return self.skip_after(&rules::SB_SECOND);
                }
            }
        }
        let Some(entry) = self.entry.clone() else {
            return self.skip(&rules::SB_KERNEL, "no boot entry");
        };
        if entry.uki || entry.kernel == first {
            return self.skip(
                &rules::SB_KERNEL,
                "the kernel is the verified loader itself (UKI or EFI-stub kernel)",
            );
        }
        if !shim && loader_kind == Some(EfiKind::Grub) {
            // Distributions' GRUB (Debian's, Fedora's) loads kernels under
            // Secure Boot only through shim's protocol; seen on Debian 12.
            return self.fail(
                &rules::SB_KERNEL,
                vec![format!("{}: GRUB was started by the firmware, not shim; under Secure Boot it verifies kernels only through shim's protocol and refuses them (`error: shim_lock protocol not found`)", entry.kernel)],
            );
        }
        self.verify_stage(&rules::SB_KERNEL, &entry.kernel, verifier, &judge);
    }

    /// Reads `file`, has `judge` decide as `verifier` would, and records
    /// `rule`'s outcome; whether it was accepted.
    fn verify_stage(
        &mut self,
        rule: &'static rules::Rule,
        file: &FileRef,
        verifier: &str,
        judge: &dyn Fn(&[u8]) -> Verdict,
    ) -> bool {
        match self.img.read(file, MAX_EFI_BINARY).map(|d| judge(&d)) {
            Ok(Verdict::Accepted { signature, by }) => {
                self.pass(rule, format!("{file}: {}", accepted(signature, &by)));
                true
            }
            Ok(Verdict::Rejected(why)) => {
                self.fail(rule, vec![format!("{file}: {why}; {verifier} refuses it")]);
                false
            }
            Err(e) => {
                self.fail(rule, vec![format!("{file}: {e}")]);
                false
            }
        }
    }

    /// Skips the stages after `failed`: the boot stops there.
    fn skip_after(&mut self, failed: &rules::Rule) {
        for r in RULES.iter().skip_while(|r| r.id != failed.id).skip(1) {
            self.skip(r, format!("the boot stops at {} first", failed.id));
        }
    }
}

fn accepted(signature: usize, by: &str) -> String {
    match signature {
        0 => format!("accepted by {by}"),
        n => format!("signature {n} chains to {by}"),
    }
}

/// shim's vendor certificate and vendor dbx.
fn vendor_lists(shim: &[u8]) -> Result<(SignatureList, SignatureList), String> {
    shim_vendor_lists(PeInfo::section_data(shim, ".vendor_cert"))
        .unwrap_or_else(|| Ok(Default::default()))
}
