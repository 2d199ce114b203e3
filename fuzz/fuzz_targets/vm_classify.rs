//! Fuzzes the boot-stage classifier with hostile console output: the first
//! byte picks the chunk size, the rest is what the guest "printed".
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&chunk, console)) = data.split_first() else {
        return;
    };
    let mut c = bootproof_vm::classify::Classifier::new();
    // The same bytes on the readiness port.
    let mut port = bootproof_vm::ready::ReadyPort::new("/nonexistent".into());
    for (i, piece) in console.chunks(usize::from(chunk).max(1)).enumerate() {
        c.feed_at(piece, i as f64);
        if let Some(line) = port.feed(piece) {
            assert!(line.len() <= 256 && line.contains("READY=1"), "{line:?}");
            c.ready(&line, i as f64);
        }
    }
    assert!(c.events().len() <= 1000);
    let _ = c.outcome();
    let _ = c.cause();
    let _ = c.waiting_for_key();
});
