//! Enough of GRUB's configuration language to find what it boots: variables
//! (`set`), `search` in all its spellings, `configfile` hops, `load_env`,
//! `menuentry`/`submenu` blocks with `linux`/`initrd`, and `default`.
//! Nothing is executed; unknown commands are ignored.

/// One parsed menu entry.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MenuEntry {
    /// Title (first argument of `menuentry`).
    pub title: String,
    /// `--id`, when given.
    pub id: Option<String>,
    /// The root device in effect (`$root`), for resolving paths.
    pub root: Option<String>,
    /// Kernel path as written (variables expanded), and its arguments.
    pub linux: Option<(String, Vec<String>)>,
    /// Initrd paths.
    pub initrds: Vec<String>,
}

/// A command the interpreter needs its caller to act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// `search`: find a filesystem by UUID, label or file and store its device name in `var`.
    Search {
        /// `fs-uuid`, `label` or `file`.
        by: String,
        /// The value searched for.
        value: String,
        /// Variable receiving the result (`root` by default).
        var: String,
    },
    /// `configfile PATH`: continue with another file.
    ConfigFile(String),
    /// `load_env [-f FILE]`.
    LoadEnv(Option<String>),
    /// `blscfg` (RHEL/Fedora): entries come from `/loader/entries`.
    Blscfg,
}

/// Splits a GRUB script line into words, honouring quotes and backslashes.
pub fn words(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut have = false;
    let mut chars = line.chars().peekable();
    let mut quote: Option<char> = None;
    while let Some(c) = chars.next() {
        match (quote, c) {
            (None, '#') if !have => break,
            (None, ' ' | '\t') => {
                if have {
                    out.push(std::mem::take(&mut cur));
                    have = false;
                }
            }
            (None, '\'' | '"') => {
                quote = Some(c);
                have = true;
            }
            (Some(q), c) if c == q => quote = None,
            (Some('\''), c) => cur.push(c),
            (_, '\\') => {
                if let Some(n) = chars.next() {
                    cur.push(n);
                    have = true;
                }
            }
            (_, c) => {
                cur.push(c);
                have = true;
            }
        }
    }
    if have {
        out.push(cur);
    }
    out
}

/// Expands `$var` and `${var}` with `lookup`.
pub fn expand(s: &str, lookup: &dyn Fn(&str) -> Option<String>) -> String {
    let mut out = String::new();
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'$' {
            let (name, next) = if b.get(i + 1) == Some(&b'{') {
                match s[i + 2..].find('}') {
                    Some(end) => (&s[i + 2..i + 2 + end], i + 3 + end),
                    None => (&s[i + 1..], b.len()),
                }
            } else {
                let end = s[i + 1..]
                    .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                    .map_or(b.len(), |e| i + 1 + e);
                (&s[i + 1..end], end)
            };
            match lookup(name) {
                Some(v) => out.push_str(&v),
                None if name.is_empty() => out.push('$'),
                None => {} // unset variables expand to nothing, as in GRUB
            }
            i = next;
        } else {
            let ch = s[i..].chars().next().expect("in bounds");
            out.push(ch);
            i += ch.len_utf8();
        }
    }
    out
}

/// Parses a `search` command's words into an [`Action`].
pub fn search(words: &[String]) -> Option<Action> {
    let cmd = words.first()?.as_str();
    let mut by = match cmd {
        "search.fs_uuid" => Some("fs-uuid"),
        "search.fs_label" => Some("label"),
        "search.file" => Some("file"),
        _ => None,
    }
    .map(str::to_string);
    let mut var = None;
    let mut rest = Vec::new();
    let mut it = words[1..].iter();
    while let Some(w) = it.next() {
        match w.as_str() {
            "--fs-uuid" | "-u" => by = Some("fs-uuid".into()),
            "--label" | "-l" => by = Some("label".into()),
            "--file" | "-f" => by = Some("file".into()),
            // The variable name is optional and only given as `--set=VAR`.
            "--set" | "-s" => var = Some("root".into()),
            w if w.starts_with("--set=") => var = Some(w["--set=".len()..].to_string()),
            w if w.starts_with("--hint") => {
                if !w.contains('=') {
                    it.next();
                }
            }
            w if w.starts_with('-') => {}
            w => rest.push(w.to_string()),
        }
    }
    let value = rest.first()?.clone();
    // The short forms `search.fs_uuid UUID VAR` name the variable positionally.
    let var = var
        .or_else(|| rest.get(1).cloned())
        .unwrap_or_else(|| "root".into());
    Some(Action::Search {
        by: by.unwrap_or_else(|| "file".into()),
        value,
        var,
    })
}

/// Reads a `grubenv` block (`# GRUB Environment Block` then `key=value`).
pub fn parse_env(text: &str) -> Vec<(String, String)> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_and_expansion() {
        assert_eq!(
            words(r#"menuentry 'Debian GNU/Linux' --class debian {"#),
            ["menuentry", "Debian GNU/Linux", "--class", "debian", "{"]
        );
        assert_eq!(words(r#"set x="a b" # comment"#), ["set", "x=a b"]);
        assert_eq!(
            words(r"linux /vmlinuz root=UUID=x\ y"),
            ["linux", "/vmlinuz", "root=UUID=x y"]
        );
        let lookup = |n: &str| match n {
            "root" => Some("hd0,gpt2".to_string()),
            "kernelopts" => Some("root=/dev/vda2 ro".to_string()),
            _ => None,
        };
        assert_eq!(expand("($root)/boot/grub", &lookup), "(hd0,gpt2)/boot/grub");
        assert_eq!(
            expand("${kernelopts} quiet $unset", &lookup),
            "root=/dev/vda2 ro quiet "
        );
    }

    #[test]
    fn every_search_spelling() {
        let w = |s: &str| words(s);
        let want = |by: &str, var: &str| {
            Some(Action::Search {
                by: by.into(),
                value: "abcd".into(),
                var: var.into(),
            })
        };
        assert_eq!(
            search(&w("search.fs_uuid abcd root")),
            want("fs-uuid", "root")
        );
        assert_eq!(search(&w("search.fs_uuid abcd")), want("fs-uuid", "root"));
        assert_eq!(
            search(&w("search --no-floppy --fs-uuid --set=root abcd")),
            want("fs-uuid", "root")
        );
        assert_eq!(
            search(&w(
                "search --no-floppy --fs-uuid --set=dev --hint-efi=hd0,gpt2 abcd"
            )),
            want("fs-uuid", "dev")
        );
        assert_eq!(
            search(&w("search --label --set abcd")),
            want("label", "root")
        );
        assert_eq!(search(&w("search -f -s abcd")), want("file", "root"));
        assert_eq!(
            search(&w("search --file --set=boot abcd")),
            want("file", "boot")
        );
        assert_eq!(search(&w("search.file abcd")), want("file", "root"));
    }
}
