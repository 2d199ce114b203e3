//! Fuzzes the host's reader of the agent's framed records (console or
//! virtio-serial bytes a hostile guest controls), fed in input-chosen
//! chunks; its memory stays bounded whatever the guest writes.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut r = bootproof_agent::RecordReader::new("fuzznonce");
    let mut rest = data;
    while let Some((&n, tail)) = rest.split_first() {
        let take = (usize::from(n) * 7 + 1).min(tail.len());
        r.feed(&tail[..take]);
        rest = &tail[take..];
    }
    let _ = r.records().len();
    let _ = r.done();
});
