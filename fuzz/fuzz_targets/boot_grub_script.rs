//! Fuzzes the GRUB interpreter: the input runs as a whole grub.cfg
//! (if/elif nesting, `test`, variables, `source`/`configfile`, menu entries,
//! `blscfg`) against a small FAT volume holding kernels, BLS entries and a
//! second config, then becomes boot entries.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = bootproof_fuzz::fuzz_grub_script(data);
});
