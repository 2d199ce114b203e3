//! Fuzzes the module closure: `modules.dep`, `modules.builtin` and each
//! module's `.modinfo` come from the input (cycles, self-dependencies,
//! huge fan-out), and the closure of the first section's names is resolved.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = bootproof_fuzz::fuzz_module_closure(data);
});
