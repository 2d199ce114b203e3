//! Fuzzes PE/COFF analysis, Authenticode signatures, SBAT (entries,
//! levels, shim's `.sbatlevel`, verdicts), Secure Boot signature lists and
//! verdicts, and GRUB's embedded module list.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Some(info) = bootproof_boot::pe::analyze(data) {
        let _ = bootproof_boot::grub_image::parse(data, info.pe32_plus);
        let _ = bootproof_boot::pe::PeInfo::section_data(data, ".linux");
        if let Some(sbat) = &info.sbat {
            let _ = bootproof_boot::signing::sbat_entries(sbat);
        }
    }
    let _ = bootproof_boot::signing::signatures(data);
    // Secure Boot: a verdict with no lists, and the bytes as signature
    // lists and as shim's .vendor_cert.
    let _ = bootproof_boot::trust::decide(data, &[], &[]);
    let _ = bootproof_boot::trust::SignatureList::default().add_efi_lists(data, "fuzz");
    let _ = bootproof_boot::trust::shim_vendor_lists(Some(data));
    // SBAT: the bytes as an SbatLevel variable and as shim's .sbatlevel,
    // and a PE's .sbat judged against each level they give.
    let mut levels: Vec<_> = bootproof_boot::sbat::SbatLevel::parse(data, "fuzz")
        .into_iter()
        .collect();
    if let Ok((automatic, latest)) = bootproof_boot::sbat::shim_levels(data) {
        levels.extend([automatic, latest]);
    }
    for level in &levels {
        let _ = bootproof_boot::sbat::verify(data, level, true);
        let _ = bootproof_boot::sbat::level_in_force(Some(level), levels.first());
    }
    let _ = bootproof_boot::grub_image::parse(data, true);
    let _ = bootproof_boot::grub_image::parse(data, false);
});
