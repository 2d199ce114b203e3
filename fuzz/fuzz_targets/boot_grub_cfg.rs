//! Fuzzes the GRUB script tokenizer, variable expansion and `search` parsing.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    for line in text.lines().take(2000) {
        let words = bootproof_boot::grub::words(line);
        let _ = bootproof_boot::grub::search(&words);
        let _ = bootproof_boot::grub::expand(line, &|n| (n.len() < 8).then(|| n.repeat(2)));
    }
    let _ = bootproof_boot::grub::parse_env(&text);
});
