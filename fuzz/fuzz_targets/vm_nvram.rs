//! Fuzzes the EDK2 variable-store reader with hostile NVRAM files.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(vars) = bootproof_vm::nvram::variables(data) {
        assert!(vars.len() <= 10_000);
        for v in vars {
            assert_eq!(v.size, v.data.len());
        }
    }
});
