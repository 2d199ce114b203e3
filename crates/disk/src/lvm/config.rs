//! LVM2's metadata text: `name = value` assignments and `name { … }`
//! sections, values being strings, integers or `[ … ]` lists of them,
//! `#` comments (lvm2's `lib/config/config.c` grammar).
//!
//! Parsed without recursion: sections nest through an explicit stack,
//! capped at [`MAX_DEPTH`] (real metadata nests five deep), and the whole
//! text is bounded by the caller (one metadata area).

use std::collections::BTreeMap;

/// Deepest section nesting accepted.
pub const MAX_DEPTH: usize = 16;
/// Most values in one list (a segment's `stripes` pairs; real ones are a
/// handful, thousands at most).
const MAX_LIST: usize = 1 << 16;

/// A value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    /// A quoted string.
    Str(String),
    /// An integer.
    Int(i64),
    /// A list of strings and integers.
    List(Vec<Value>),
}

/// A section: its values and subsections, by name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Section {
    /// `name = value` assignments.
    pub values: BTreeMap<String, Value>,
    /// `name { … }` subsections, in text order.
    pub sections: Vec<(String, Section)>,
}

impl Section {
    /// A string value.
    pub fn str(&self, key: &str) -> Option<&str> {
        match self.values.get(key)? {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    /// A non-negative integer value.
    pub fn u64(&self, key: &str) -> Option<u64> {
        match self.values.get(key)? {
            Value::Int(i) => u64::try_from(*i).ok(),
            _ => None,
        }
    }

    /// A list value.
    pub fn list(&self, key: &str) -> Option<&[Value]> {
        match self.values.get(key)? {
            Value::List(l) => Some(l),
            _ => None,
        }
    }

    /// The subsection named `name`.
    pub fn section(&self, name: &str) -> Option<&Section> {
        self.sections
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, s)| s)
    }
}

/// Tokens of the grammar.
#[derive(Debug, PartialEq)]
enum Token {
    Word(String),
    Str(String),
    Int(i64),
    Punct(char),
}

fn tokens(text: &str) -> Result<Vec<Token>, String> {
    let mut out = Vec::new();
    let mut chars = text.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        match c {
            c if c.is_whitespace() => {}
            '#' => while chars.next_if(|(_, c)| *c != '\n').is_some() {},
            '{' | '}' | '[' | ']' | '=' | ',' => out.push(Token::Punct(c)),
            '"' => {
                let mut s = String::new();
                loop {
                    match chars.next() {
                        Some((_, '"')) => break,
                        Some((_, '\\')) => {
                            if let Some((_, e)) = chars.next() {
                                s.push(e);
                            }
                        }
                        Some((_, c)) => s.push(c),
                        None => return Err(format!("unterminated string at byte {i}")),
                    }
                }
                out.push(Token::Str(s));
            }
            c if c == '-' || c.is_ascii_digit() => {
                let mut s = String::from(c);
                while let Some((_, d)) =
                    chars.next_if(|(_, d)| d.is_ascii_alphanumeric() || *d == '.')
                {
                    s.push(d);
                }
                // Integers only; lvm2 writes floats nowhere in VG metadata.
                let n = s
                    .parse()
                    .map_err(|_| format!("bad number `{s}` at byte {i}"))?;
                out.push(Token::Int(n));
            }
            c if c.is_alphanumeric() || c == '_' || c == '.' || c == '+' => {
                let mut s = String::from(c);
                while let Some((_, d)) =
                    chars.next_if(|(_, d)| d.is_alphanumeric() || "_.+-".contains(*d))
                {
                    s.push(d);
                }
                out.push(Token::Word(s));
            }
            other => return Err(format!("unexpected `{other}` at byte {i}")),
        }
    }
    Ok(out)
}

/// Parses a metadata text into its top-level section.
pub fn parse(text: &str) -> Result<Section, String> {
    let toks = tokens(text)?;
    let mut stack: Vec<(String, Section)> = vec![(String::new(), Section::default())];
    let mut i = 0;
    while i < toks.len() {
        match (&toks[i], toks.get(i + 1)) {
            (Token::Punct('}'), _) => {
                if stack.len() == 1 {
                    return Err("`}` without a section".into());
                }
                let (name, done) = stack.pop().expect("depth checked");
                stack
                    .last_mut()
                    .expect("root")
                    .1
                    .sections
                    .push((name, done));
                i += 1;
            }
            (Token::Word(name), Some(Token::Punct('{'))) => {
                if stack.len() > MAX_DEPTH {
                    return Err(format!("sections nested deeper than {MAX_DEPTH}"));
                }
                stack.push((name.clone(), Section::default()));
                i += 2;
            }
            (Token::Word(name), Some(Token::Punct('='))) => {
                let (value, used) = value(&toks[i + 2..])?;
                stack
                    .last_mut()
                    .expect("root")
                    .1
                    .values
                    .insert(name.clone(), value);
                i += 2 + used;
            }
            (t, _) => return Err(format!("unexpected {t:?}")),
        }
    }
    if stack.len() != 1 {
        return Err("a section is not closed".into());
    }
    Ok(stack.pop().expect("root").1)
}

/// One value at the start of `toks`, and how many tokens it took.
fn value(toks: &[Token]) -> Result<(Value, usize), String> {
    let scalar = |t: &Token| match t {
        Token::Str(s) => Some(Value::Str(s.clone())),
        Token::Int(n) => Some(Value::Int(*n)),
        _ => None,
    };
    match toks.first() {
        Some(Token::Punct('[')) => {
            let mut items = Vec::new();
            let mut i = 1;
            loop {
                match toks.get(i) {
                    Some(Token::Punct(']')) => return Ok((Value::List(items), i + 1)),
                    Some(Token::Punct(',')) => i += 1,
                    Some(t) => {
                        let v = scalar(t).ok_or_else(|| format!("unexpected {t:?} in a list"))?;
                        if items.len() >= MAX_LIST {
                            return Err(format!("a list longer than {MAX_LIST}"));
                        }
                        items.push(v);
                        i += 1;
                    }
                    None => return Err("a list is not closed".into()),
                }
            }
        }
        Some(t) => scalar(t)
            .map(|v| (v, 1))
            .ok_or_else(|| format!("unexpected {t:?} as a value")),
        None => Err("a value is missing".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn real_metadata_shapes_parse() {
        let text = r#"# Generated by LVM2
vg0 {
id = "JCAIOD-fZDr-aliH-Nuda-3Dxu-ANDn-bs4Q0a"
seqno = 3
status = ["RESIZEABLE", "READ", "WRITE"]
extent_size = 8192   # 4 MiB
physical_volumes {
pv0 {
id = "9A2i00-MMJG-RMU2-pXzd-2je8-CgUL-ZJ1rI3"
pe_start = 2048
pe_count = 15
}
}
logical_volumes {
root {
segment1 {
start_extent = 0
extent_count = 5
type = "striped"
stripe_count = 1
stripes = [
"pv0", 0
]
}
}
}
}
contents = "Text Format Volume Group"
creation_time = 1796050000
"#;
        let root = parse(text).unwrap();
        let vg = root.section("vg0").unwrap();
        assert_eq!(vg.u64("extent_size"), Some(8192));
        assert_eq!(root.str("contents"), Some("Text Format Volume Group"));
        let seg = vg
            .section("logical_volumes")
            .and_then(|l| l.section("root"))
            .and_then(|r| r.section("segment1"))
            .unwrap();
        assert_eq!(
            seg.list("stripes").unwrap(),
            [Value::Str("pv0".into()), Value::Int(0)]
        );
    }

    #[test]
    fn hostile_texts_are_errors_without_recursion() {
        let deep = "a {".repeat(100_000);
        assert!(parse(&deep).unwrap_err().contains("deeper"));
        for bad in [
            "a {",
            "}",
            "a = ",
            "a = [1, 2",
            "a = \"x",
            "a = {",
            "= 3",
            "a = 12x",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
        let long = format!("a = [{}]", "1,".repeat(MAX_LIST + 1));
        assert!(parse(&long).is_err());
    }
}
