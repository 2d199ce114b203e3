//! Fuzzes PE/COFF analysis, Authenticode signatures and SBAT, and GRUB's
//! embedded module list.
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
    let _ = bootproof_boot::grub_image::parse(data, true);
    let _ = bootproof_boot::grub_image::parse(data, false);
});
