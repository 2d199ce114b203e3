//! Secure Boot, predicted: each stage of the chain checked as the thing
//! that verifies it would check it (`bootproof_boot::trust`): the firmware
//! (db/dbx) the removable loader; shim (db and its vendor certificate,
//! after dbx and its vendor dbx) the loader it starts and, through its
//! protocol, the kernel.

use super::{rules, Ctx};
use bootproof_boot::pe::{EfiKind, PeInfo};
use bootproof_boot::sbat::{self, SbatLevel};
use bootproof_boot::signing::{sbat_entries, MAX_EFI_BINARY};
use bootproof_boot::trust::{decide, shim_vendor_lists, FirmwareStore, SignatureList, Verdict};
use bootproof_inspect::FileRef;

const RULES: [&rules::Rule; 4] = [
    &rules::SB_FIRST,
    &rules::SB_SHIM_SBAT,
    &rules::SB_SECOND,
    &rules::SB_KERNEL,
];

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
                    &rules::SB_SHIM_SBAT,
                    vec![format!("{first}: shim's .vendor_cert: {e}")],
                );
                return self.skip_after(&rules::SB_SHIM_SBAT);
            }
            None => Default::default(),
        };
        let level = match shim {
            true => match self.shim_sbat(&first, &loader, store) {
                Ok(level) => level,
                Err(()) => return self.skip_after(&rules::SB_SHIM_SBAT),
            },
            false => {
                self.skip(
                    &rules::SB_SHIM_SBAT,
                    "the loader is not shim (the firmware does not read .sbat)",
                );
                None
            }
        };
        let verifier = if shim { "shim" } else { "the firmware" };
        let none = SignatureList::default();
        let (mok, mokx) = match shim {
            true => (&store.mok, &store.mokx),
            false => (&none, &none),
        };
        let allow_lists = [&store.db, &allow, mok];
        let deny_lists = [&store.dbx, &deny, mokx];
        // shim checks a signature, then SBAT: mandatory for what it starts,
        // optional for what its protocol verifies for the loader.
        let judge_with = |required: bool| {
            let (allow_lists, deny_lists, level) = (&allow_lists, &deny_lists, &level);
            move |data: &[u8]| match (decide(data, allow_lists, deny_lists), level) {
                (Verdict::Accepted { signature, by }, Some(level)) => {
                    match sbat::verify(data, level, required) {
                        Ok(sbat) => Verdict::Accepted {
                            signature,
                            by: format!("{by}; {sbat}"),
                        },
                        Err(why) => Verdict::Rejected(why),
                    }
                }
                (verdict, _) => verdict,
            }
        };
        match self.chain.second_stage.clone() {
            None => self.skip(
                &rules::SB_SECOND,
                "the firmware starts the loader itself: no second stage",
            ),
            Some(second) => {
                if !self.verify_stage(&rules::SB_SECOND, &second, verifier, &judge_with(true)) {
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
        self.verify_stage(
            &rules::SB_KERNEL,
            &entry.kernel,
            verifier,
            &judge_with(false),
        );
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

    /// shim's self-check (`secureboot.shim-sbat`): the SbatLevel in force
    /// (the store's variable or shim's automatic level, whichever is
    /// newer) against shim's own `.sbat`. The level, or Err when shim stops.
    fn shim_sbat(
        &mut self,
        shim: &FileRef,
        data: &[u8],
        store: &FirmwareStore,
    ) -> Result<Option<SbatLevel>, ()> {
        let automatic = match PeInfo::section_data(data, ".sbatlevel").map(sbat::shim_levels) {
            Some(Ok((automatic, _latest))) => Some(automatic),
            Some(Err(e)) => {
                self.fail(&rules::SB_SHIM_SBAT, vec![format!("{shim}: {e}")]);
                return Err(());
            }
            None => None,
        };
        let Some(level) = sbat::level_in_force(store.sbat_level.as_ref(), automatic.as_ref())
        else {
            self.pass(
                &rules::SB_SHIM_SBAT,
                format!("{shim}: no SbatLevel in the store and none built into shim: nothing is revoked"),
            );
            return Ok(None);
        };
        // The chain already analysed the loader: its `.sbat` is there.
        let own = self
            .chain
            .removable_info
            .as_ref()
            .and_then(|i| i.sbat.as_deref());
        let entries = own.map(sbat_entries).unwrap_or_default();
        match sbat::verify_entries(&entries, &level, true) {
            Ok(sbat) => {
                self.pass(&rules::SB_SHIM_SBAT, format!("{shim}: {sbat}"));
                Ok(Some(level))
            }
            Err(why) => {
                self.fail(
                    &rules::SB_SHIM_SBAT,
                    vec![format!(
                        "{shim}: {why}; shim stops (`SBAT self-check failed`)"
                    )],
                );
                Err(())
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
