//! Fuzzes the escaping layer every renderer uses: any string must give a
//! JUnit document a strict XML 1.0 parser accepts with the text intact in
//! visible form, HTML without markup, a Markdown table cell on one line,
//! and terminal text without control characters.
#![no_main]
use bootproof_runtime::render::escape;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let s = String::from_utf8_lossy(data);
    let x = escape::xml(&s);
    let doc = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><testsuite name=\"{x}\"><testcase name=\"{x}\"><failure message=\"{x}\">{x}</failure></testcase></testsuite>"
    );
    let parsed = roxmltree::Document::parse(&doc)
        .unwrap_or_else(|e| panic!("escape::xml({s:?}) gave invalid XML: {e}"));
    assert_eq!(parsed.root_element().attribute("name").map(str::len), Some(unescaped_len(&x)));

    let h = escape::html(&s);
    assert!(!h.contains(['<', '>', '"', '\'']), "html: {h:?}");
    assert!(h.split('&').skip(1).all(|t| t.contains(';')), "html: {h:?}");

    let m = escape::markdown(&s);
    assert!(!m.contains(['\n', '\r']), "markdown: {m:?}");
    assert!(unescaped_pipes(&m) == 0, "markdown: {m:?}");

    for t in [escape::terminal(&s), escape::terminal_keep_colours(&s)] {
        assert!(
            !t.chars().any(|c| (c.is_control() && c != '\x1b' && c != '\n' && c != '\t')
                || ('\u{80}'..='\u{9f}').contains(&c)),
            "terminal: {t:?}"
        );
    }
    assert!(!escape::terminal(&s).contains('\x1b'));
});

/// Length of `x` once XML's five entities are read back.
fn unescaped_len(x: &str) -> usize {
    let mut n = x.len();
    for (entity, ch) in [("&amp;", 1), ("&lt;", 1), ("&gt;", 1), ("&quot;", 1), ("&apos;", 1)] {
        n -= x.matches(entity).count() * (entity.len() - ch);
    }
    n
}

/// `|` not preceded by a backslash.
fn unescaped_pipes(m: &str) -> usize {
    let b = m.as_bytes();
    (0..b.len()).filter(|&i| b[i] == b'|' && (i == 0 || b[i - 1] != b'\\')).count()
}
