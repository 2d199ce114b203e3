//! Fuzzes the GRUB interpreter: the input runs as a whole grub.cfg
//! (if/elif nesting, `test`, variables, `source`/`configfile`, menu entries,
//! `blscfg`) against a small FAT volume holding kernels, BLS entries and a
//! second config, then becomes boot entries.
#![no_main]
use bootproof_platform::Arch;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let img = bootproof_fuzz::boot_volume();
    let text = String::from_utf8_lossy(data);
    let chain = bootproof_boot::chain::fuzzing::grub_config(img, 0, Arch::X86_64, &text);
    let _ = chain.default_entry();
});
