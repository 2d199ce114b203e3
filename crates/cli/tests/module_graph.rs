//! The front end stays thin and layered: its modules import each other
//! without cycles (commands use the shared modules — args, style,
//! progress, session — never each other or the crate root), and the whole
//! crate stays under 2,800 lines; the engine lives in bootproof-runtime.

use std::collections::BTreeMap;
use std::path::Path;

/// Module name → the modules it names through `crate::…`.
fn graph() -> (BTreeMap<String, Vec<String>>, usize) {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut texts = BTreeMap::new();
    let mut lines = 0;
    for e in std::fs::read_dir(&src).unwrap().flatten() {
        let p = e.path();
        if p.extension().is_some_and(|x| x == "rs") {
            let text = std::fs::read_to_string(&p).unwrap();
            lines += text.lines().count();
            let name = p.file_stem().unwrap().to_string_lossy().into_owned();
            texts.insert(name, text);
        }
    }
    let modules: Vec<String> = texts.keys().filter(|m| *m != "main").cloned().collect();
    let mut edges = BTreeMap::new();
    for (name, text) in &texts {
        if name == "main" {
            continue;
        }
        let mut to: Vec<String> = Vec::new();
        for (at, _) in text.match_indices("crate::") {
            let rest = &text[at + "crate::".len()..];
            let first: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == '{')
                .collect();
            let first = first.trim_start_matches('{');
            // `crate::{a::X, b::Y}`: every name in the braces.
            let names: Vec<String> = if rest.starts_with('{') {
                let inner = &rest[1..rest.find('}').unwrap()];
                inner
                    .split(',')
                    .map(|s| s.trim().split("::").next().unwrap().to_string())
                    .filter(|s| !s.is_empty())
                    .collect()
            } else {
                vec![first.to_string()]
            };
            for n in names {
                assert!(
                    modules.contains(&n),
                    "{name}.rs uses `crate::{n}`, an item of the crate root: shared items live in a module"
                );
                if !to.contains(&n) {
                    to.push(n);
                }
            }
        }
        edges.insert(name.clone(), to);
    }
    (edges, lines)
}

/// The first cycle found, as a path of modules.
fn cycle(edges: &BTreeMap<String, Vec<String>>) -> Option<Vec<String>> {
    fn visit(
        m: &str,
        edges: &BTreeMap<String, Vec<String>>,
        path: &mut Vec<String>,
        done: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        if let Some(i) = path.iter().position(|p| p == m) {
            let mut c = path[i..].to_vec();
            c.push(m.to_string());
            return Some(c);
        }
        if done.iter().any(|d| d == m) {
            return None;
        }
        path.push(m.to_string());
        for next in edges.get(m).into_iter().flatten() {
            if let Some(c) = visit(next, edges, path, done) {
                return Some(c);
            }
        }
        path.pop();
        done.push(m.to_string());
        None
    }
    let mut done = Vec::new();
    edges
        .keys()
        .find_map(|m| visit(m, edges, &mut Vec::new(), &mut done))
}

#[test]
fn cli_modules_form_no_cycle_and_the_crate_stays_thin() {
    let (edges, lines) = graph();
    assert!(edges.len() >= 10, "found the modules: {edges:?}");
    assert_eq!(cycle(&edges), None, "{edges:#?}");
    // Shared modules use only shared modules, never a command.
    let shared = ["args", "style", "progress", "session"];
    for m in shared {
        for to in &edges[m] {
            assert!(
                shared.contains(&to.as_str()),
                "shared module {m} depends on command {to}"
            );
        }
    }
    // About 215 lines a command (thirteen of them since `prove` and
    // `history --predictions/--html`, with their --help texts and human
    // renderers, `inspect`'s with each EFI binary's signers) plus the
    // shared modules; pages, JUnit and JSON are rendered by the runtime,
    // signature facts by bootproof-boot; completions and manual pages are
    // generated from the clap definitions (manual.rs).
    assert!(
        lines < 2950,
        "the CLI has {lines} lines: engine code belongs in bootproof-runtime"
    );
}

#[test]
fn the_cycle_finder_finds_cycles() {
    let mut e = BTreeMap::new();
    e.insert("a".to_string(), vec!["b".to_string()]);
    e.insert("b".to_string(), vec!["c".to_string()]);
    e.insert("c".to_string(), vec!["a".to_string()]);
    assert_eq!(cycle(&e).unwrap(), ["a", "b", "c", "a"]);
    e.insert("c".to_string(), vec![]);
    assert_eq!(cycle(&e), None);
}
