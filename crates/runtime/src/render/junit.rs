//! JUnit XML for CI viewers: one writer for every command that reports
//! test-like results (`check`: one case per rule; `verify`: one suite per
//! variant, one case per check).

use std::fmt::Write;

pub use super::escape::xml;

/// How one case ended.
pub enum CaseOutcome {
    /// Passed; the text goes to `system-out`.
    Pass(String),
    /// Failed.
    Fail {
        /// `type` attribute (`error`, `warning`, `check`).
        kind: String,
        /// `message` attribute.
        message: String,
        /// Element body.
        body: String,
    },
    /// Skipped, with why.
    Skip(String),
}

/// One test case.
pub struct Case {
    /// `classname`.
    pub class: String,
    /// `name`.
    pub name: String,
    /// Outcome.
    pub outcome: CaseOutcome,
}

/// One suite.
pub struct Suite {
    /// Suite name.
    pub name: String,
    /// Its cases.
    pub cases: Vec<Case>,
}

fn counts(cases: &[&Case]) -> (usize, usize, usize) {
    let fail = cases
        .iter()
        .filter(|c| matches!(c.outcome, CaseOutcome::Fail { .. }))
        .count();
    let skip = cases
        .iter()
        .filter(|c| matches!(c.outcome, CaseOutcome::Skip(_)))
        .count();
    (cases.len(), fail, skip)
}

/// The document.
pub fn render(name: &str, suites: &[Suite]) -> String {
    let all: Vec<&Case> = suites.iter().flat_map(|s| s.cases.iter()).collect();
    let (tests, failures, skipped) = counts(&all);
    let mut o = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(
        o,
        "<testsuites name=\"{}\" tests=\"{tests}\" failures=\"{failures}\" skipped=\"{skipped}\">",
        xml(name)
    );
    for s in suites {
        let cases: Vec<&Case> = s.cases.iter().collect();
        let (tests, failures, skipped) = counts(&cases);
        let _ = writeln!(
            o,
            "  <testsuite name=\"{}\" tests=\"{tests}\" failures=\"{failures}\" skipped=\"{skipped}\">",
            xml(&s.name)
        );
        for c in &s.cases {
            let _ = write!(
                o,
                "    <testcase classname=\"{}\" name=\"{}\">",
                xml(&c.class),
                xml(&c.name)
            );
            match &c.outcome {
                CaseOutcome::Pass(out) => {
                    let _ = writeln!(
                        o,
                        "\n      <system-out>{}</system-out>\n    </testcase>",
                        xml(out)
                    );
                }
                CaseOutcome::Fail {
                    kind,
                    message,
                    body,
                } => {
                    let _ = writeln!(
                        o,
                        "\n      <failure type=\"{}\" message=\"{}\">{}</failure>\n    </testcase>",
                        xml(kind),
                        xml(message),
                        xml(body)
                    );
                }
                CaseOutcome::Skip(why) => {
                    let _ = writeln!(
                        o,
                        "\n      <skipped message=\"{}\"/>\n    </testcase>",
                        xml(why)
                    );
                }
            }
        }
        o.push_str("  </testsuite>\n");
    }
    o.push_str("</testsuites>\n");
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_that_xml_cannot_hold_is_made_visible() {
        assert_eq!(xml("a<b & \"c\""), "a&lt;b &amp; &quot;c&quot;");
        assert_eq!(
            xml("esc \u{1b}[31m bell \u{7}"),
            "esc \\u001b[31m bell \\u0007"
        );
        assert_eq!(xml("tab\tnl\n"), "tab\tnl\n");
        assert_eq!(xml("\u{0}\u{FFFF}"), "\\u0000\\uffff");
        // A whole report with hostile text in every field is well-formed:
        // no character outside XML 1.0's Char production remains.
        let hostile = "\u{1b}]0;title\u{7}<x>&\u{0}\u{8}\u{FFFE}";
        let doc = render(
            hostile,
            &[Suite {
                name: hostile.into(),
                cases: vec![Case {
                    class: hostile.into(),
                    name: hostile.into(),
                    outcome: CaseOutcome::Fail {
                        kind: hostile.into(),
                        message: hostile.into(),
                        body: hostile.into(),
                    },
                }],
            }],
        );
        assert!(doc.chars().all(|c| matches!(c, '\t' | '\n' | '\r')
            || ((c as u32) >= 0x20 && c != '\u{FFFE}' && c != '\u{FFFF}')));
        assert!(!doc.contains("<x>"));
    }
}
