//! Fuzzes the module closure: `modules.dep`, `modules.builtin` and each
//! module's `.modinfo` come from the input (cycles, self-dependencies,
//! huge fan-out), and the closure of the first line's names is resolved.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let src = bootproof_fuzz::FuzzModules::decode(data);
    let wanted = src.wanted();
    let names: Vec<&str> = wanted.iter().map(String::as_str).collect();
    let closure = bootproof_boot::modules::resolve(&src, &names);
    let _ = closure.cycles;
    let _ = bootproof_boot::modules::modinfo_depends(data);
});
