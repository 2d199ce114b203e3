//! One escaping layer per output format. Text from an image (file names,
//! labels, GRUB titles, os-release) or a guest (command output, agent
//! evidence) is hostile input: every renderer passes it through the
//! function for its format, and nothing else.

use std::borrow::Cow;
use std::fmt::Write;

/// Whether XML 1.0 can hold `c` at all (its `Char` production).
fn xml_char(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r') || ((c as u32) >= 0x20 && !matches!(c, '\u{FFFE}' | '\u{FFFF}'))
}

/// XML 1.0 attributes and content. Characters XML 1.0 cannot hold
/// (control characters other than tab, newline and carriage return;
/// U+FFFE, U+FFFF) are written visibly as `\uXXXX` so the document stays
/// well-formed.
pub fn xml(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            c if !xml_char(c) => {
                let _ = write!(o, "\\u{:04x}", c as u32);
            }
            c => o.push(c),
        }
    }
    o
}

/// HTML content and attributes (control characters as in [`xml`]).
pub fn html(s: &str) -> String {
    xml(s).replace('\'', "&#39;")
}

/// A Markdown table cell: one line, no markup. Newlines become spaces;
/// `|` and every character Markdown or inline HTML gives a meaning to is
/// backslash-escaped or entity-escaped, so an image name cannot add a
/// column, a link, an image or a tag.
pub fn markdown(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\n' | '\r' | '\t' => o.push(' '),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '&' => o.push_str("&amp;"),
            // Links and images need `[`; emphasis `*`, `_`, `~`; code `` ` ``.
            '\\' | '|' | '`' | '*' | '_' | '[' | ']' | '~' => {
                o.push('\\');
                o.push(c);
            }
            c if c.is_control() => {
                let _ = write!(o, "\\u{:04x}", c as u32);
            }
            c => o.push(c),
        }
    }
    o
}

/// A Markdown code span holding `s` verbatim on one line: fenced with one
/// more backtick than the longest run inside it.
pub fn code_span(s: &str) -> String {
    let one_line: String = s
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let (mut run, mut longest) = (0, 0);
    for c in one_line.chars() {
        run = if c == '`' { run + 1 } else { 0 };
        longest = longest.max(run);
    }
    let fence = "`".repeat(longest + 1);
    format!("{fence} {one_line} {fence}")
}

/// Text for a terminal: control characters (escape sequences that move
/// the cursor, retitle the window or hide text; bells; carriage returns
/// that overwrite a line) are shown as `\uXXXX` instead of acting (the form JSON uses too, so a JSON document passing through stays valid and means the same). Newlines
/// and tabs stay. Unchanged text is borrowed.
pub fn terminal(s: &str) -> Cow<'_, str> {
    escape_controls(s, &[])
}

/// Control characters other than newline and tab as `\uXXXX`, except
/// where one of the `keep` sequences starts.
fn escape_controls<'a>(s: &'a str, keep: &[&str]) -> Cow<'a, str> {
    if !s
        .chars()
        .any(|c| c.is_control() && !matches!(c, '\n' | '\t'))
    {
        return Cow::Borrowed(s);
    }
    let mut o = String::with_capacity(s.len() + 8);
    let mut rest = s;
    while let Some(c) = rest.chars().next() {
        if let Some(own) = keep.iter().find(|own| rest.starts_with(**own)) {
            o.push_str(own);
            rest = &rest[own.len()..];
            continue;
        }
        if c.is_control() && !matches!(c, '\n' | '\t') {
            let _ = write!(o, "\\u{:04x}", c as u32);
        } else {
            o.push(c);
        }
        rest = &rest[c.len_utf8()..];
    }
    Cow::Owned(o)
}

/// The colour sequences bootproof's own terminal output uses (SGR reset,
/// bold, dim, red, yellow, blue, cyan, green).
const OWN_COLOURS: &[&str] = &[
    "\u{1b}[0m",
    "\u{1b}[1m",
    "\u{1b}[2m",
    "\u{1b}[1;31m",
    "\u{1b}[33m",
    "\u{1b}[1;34m",
    "\u{1b}[36m",
    "\u{1b}[32m",
];

/// A whole block of human output for a terminal: [`terminal`], except that
/// the colour sequences bootproof itself writes pass. Hostile text can at
/// most recolour itself; it cannot move the cursor, clear or retitle the
/// terminal, hide text or ring the bell.
pub fn terminal_keep_colours(s: &str) -> Cow<'_, str> {
    escape_controls(s, OWN_COLOURS)
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOSTILE: &str =
        "a\u{1b}]0;pwned\u{7}b\u{1b}[2J\r|x|<img src=x>[l](u)![i](j)\n`c`\u{0}\u{FFFF}";

    #[test]
    fn xml_and_html_hold_only_legal_characters() {
        for out in [xml(HOSTILE), html(HOSTILE)] {
            assert!(out.chars().all(xml_char), "{out:?}");
            assert!(!out.contains('<') && !out.contains('>'));
        }
        assert_eq!(xml("a<b & \"c\""), "a&lt;b &amp; &quot;c&quot;");
        assert_eq!(html("it's"), "it&#39;s");
    }

    #[test]
    fn markdown_cells_stay_one_plain_cell() {
        let out = markdown(HOSTILE);
        assert!(!out.contains('\n') && !out.contains('\u{1b}'));
        // Every `|`, `[`, `]` and backtick is escaped: no column, link,
        // image or code span.
        for (i, c) in out.char_indices() {
            if matches!(c, '|' | '[' | ']' | '`') {
                assert_eq!(&out[i - 1..i], "\\", "{out}");
            }
        }
        assert!(!out.contains('<'));
        assert_eq!(markdown("exit 0"), "exit 0");
        assert_eq!(markdown("exit 4 (expected 0)"), "exit 4 (expected 0)");
        assert_eq!(code_span("sh -c 'a|b'"), "` sh -c 'a|b' `");
        assert_eq!(code_span("echo `x`\nls"), "`` echo `x` ls ``");
    }

    #[test]
    fn terminal_text_cannot_drive_the_terminal() {
        let out = terminal(HOSTILE);
        assert!(!out.contains('\u{1b}') && !out.contains('\u{7}') && !out.contains('\r'));
        assert!(out.contains("\\u001b]0;pwned\\u0007"));
        assert!(matches!(terminal("plain\ttext\n"), Cow::Borrowed(_)));
        // JSON passing through keeps its meaning: DEL and C1 controls,
        // which serde_json leaves raw, become JSON's own escapes.
        let json = serde_json::to_string("a\u{7f}b\u{9b}c\u{1b}").unwrap();
        let back: String = serde_json::from_str(&terminal_keep_colours(&json)).unwrap();
        assert_eq!(back, "a\u{7f}b\u{9b}c\u{1b}");
        let ours = "\u{1b}[1;31mFAIL\u{1b}[0m x";
        assert_eq!(terminal_keep_colours(ours), ours);
        let mixed = format!("{ours} {HOSTILE}");
        let out = terminal_keep_colours(&mixed);
        assert!(out.starts_with(ours));
        assert!(!out[ours.len()..].contains('\u{1b}'), "{out:?}");
    }
}
