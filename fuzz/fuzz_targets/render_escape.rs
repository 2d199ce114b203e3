//! Fuzzes the escaping layer every renderer uses: any string must give a
//! JUnit document a strict XML 1.0 parser accepts, HTML without markup, a
//! Markdown table cell on one line, and terminal text without control
//! characters.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = bootproof_fuzz::fuzz_render(data);
});
