//! Fuzzes the host's reader of the agent's framed records (console or
//! virtio-serial bytes a hostile guest controls), fed in input-chosen
//! chunks; its memory stays bounded whatever the guest writes.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = bootproof_fuzz::fuzz_agent_records(data);
});
