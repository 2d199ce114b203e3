//! An interpreter for the subset of GRUB script that real distribution
//! configs use (`set`, `if`/`elif`, `search`, `menuentry`, `linux`,
//! `initrd`, `configfile`/`source`, `blscfg`, `load_env`…), with GRUB's
//! device and path syntax, which turns a `grub.cfg` into boot entries.

use super::bls::bls_dir;
use super::*;
use crate::grub::{self, Action};

/// A GRUB device name → our slot: `(hd0,gpt2)`, `hd0,msdos1`, or an
/// internal `(slotN)` from a resolved `search`.
pub(super) fn grub_device(dev: &str) -> Option<u32> {
    let d = dev.trim_start_matches('(').trim_end_matches(')');
    if let Some(n) = d.strip_prefix("slot") {
        return n.parse().ok();
    }
    let part = d.split(',').nth(1)?;
    part.trim_start_matches(|c: char| c.is_ascii_alphabetic())
        .parse()
        .ok()
}

/// Resolves a GRUB path (`(dev)/p`, or `/p` on `$root`).
pub(super) fn grub_path(p: &str, root: Option<u32>) -> Option<FileRef> {
    if let Some(rest) = p.strip_prefix('(') {
        let (dev, path) = rest.split_once(')')?;
        return Some(FileRef {
            slot: grub_device(dev)?,
            path: if path.is_empty() {
                "/".into()
            } else {
                path.to_string()
            },
        });
    }
    Some(FileRef {
        slot: root?,
        path: p.to_string(),
    })
}

pub(super) struct GrubState<'a> {
    pub(super) img: &'a OpenedImage,
    pub(super) vars: HashMap<String, String>,
    pub(super) hops: usize,
    pub(super) menu: Vec<grub::MenuEntry>,
    pub(super) menu_sources: Vec<String>,
    pub(super) bls: Vec<BootEntry>,
    /// Files of GRUB's own memdisk, addressed as `(memdisk)/path`.
    pub(super) memdisk: HashMap<String, Vec<u8>>,
    /// `if` blocks being run, innermost included.
    pub(super) if_depth: usize,
    /// Modules built into the GRUB image (empty: not known).
    pub(super) modules: std::collections::BTreeSet<String>,
}

/// Deepest `if` nesting evaluated (real configs nest two or three deep; a
/// crafted one nested thousands deep recursed once per level).
const MAX_IF_DEPTH: usize = 32;

impl GrubState<'_> {
    /// The filesystem GRUB's `search` would find: by UUID, label, or a file it holds.
    fn search_slot(&self, by: &str, value: &str) -> Option<&Slot> {
        self.img.slots.iter().find(|s| match by {
            "fs-uuid" => s
                .uuid
                .as_deref()
                .is_some_and(|u| u.eq_ignore_ascii_case(value)),
            "label" => s.label.as_deref() == Some(value),
            _ => s
                .volume
                .as_ref()
                .is_some_and(|v| v.exists(value.as_bytes()).unwrap_or(false)),
        })
    }

    /// A config file by GRUB path: on the memdisk or on an image partition.
    fn read_config(&self, path: &str) -> Option<(String, String)> {
        if let Some(p) = path.strip_prefix("(memdisk)") {
            let text = self
                .memdisk
                .get(&p.trim_start_matches('/').to_lowercase())?;
            return Some((String::from_utf8_lossy(text).into_owned(), path.to_string()));
        }
        let f = grub_path(path, self.root())?;
        self.img
            .read_text(&f, MAX_CONFIG)
            .map(|t| (t, f.to_string()))
    }

    /// GRUB's `[ -e PATH ]` (files and directories).
    /// Whether GRUB can run a command its module `name` provides: built
    /// into its image, or a `.mod` in its memdisk or under
    /// `$prefix/<cpu>-efi/`. Assumed when the image lists no modules.
    fn has_module(&self, name: &str) -> bool {
        if self.modules.is_empty() || self.modules.contains(name) {
            return true;
        }
        let file = format!("{name}.mod");
        if self
            .memdisk
            .keys()
            .any(|k| k.ends_with(&format!("/{file}")))
        {
            return true;
        }
        let dir = format!(
            "{}/{}-efi",
            self.vars.get("prefix").map_or("", String::as_str),
            self.vars.get("grub_cpu").map_or("", String::as_str)
        );
        self.path_exists(&format!("{dir}/{file}"))
    }

    pub(super) fn path_exists(&self, path: &str) -> bool {
        if let Some(p) = path.strip_prefix("(memdisk)") {
            let p = p.trim_matches('/').to_lowercase();
            return p.is_empty()
                || self
                    .memdisk
                    .keys()
                    .any(|k| *k == p || k.starts_with(&format!("{p}/")));
        }
        grub_path(path, self.root()).is_some_and(|f| {
            vol(self.img, f.slot).is_some_and(|v| v.metadata(f.path.as_bytes()).is_ok())
        })
    }

    /// Evaluates an `if`/`elif` condition: `[ … ]`/`test`, `search`, `true`/`false`.
    fn condition(&mut self, words: &[String], chain: &mut BootChain) -> bool {
        let (negate, words) = match words.first().map(String::as_str) {
            Some("!") => (true, &words[1..]),
            _ => (false, words),
        };
        let result = match words.first().map(String::as_str) {
            Some("[") | Some("test") => {
                let inner: Vec<String> = words[1..].iter().filter(|w| *w != "]").cloned().collect();
                self.test(&inner)
            }
            Some(c) if c.starts_with("search") => {
                grub::search(words).is_some_and(|a| self.act(a, chain))
            }
            Some("false") => false,
            _ => true, // other commands are assumed to succeed
        };
        result != negate
    }

    /// The `test` builtin: `-o` binds loosest, then `-a`, then `!` and
    /// primaries. Evaluated in one pass over the words, without recursion
    /// (a line of thousands of `!` or `-o` recursed once per word and
    /// rescanned the rest each time).
    fn test(&self, w: &[String]) -> bool {
        w.split(|x| x == "-o").any(|any| {
            any.split(|x| x == "-a").all(|term| {
                let nots = term.iter().take_while(|x| *x == "!").count();
                self.primary(&term[nots..]) != (nots % 2 == 1)
            })
        })
    }

    /// One `test` primary.
    fn primary(&self, w: &[String]) -> bool {
        match w {
            [op, s] if op == "-z" => s.is_empty(),
            [op, s] if op == "-n" => !s.is_empty(),
            [op, p] if matches!(op.as_str(), "-e" | "-f" | "-s" | "-d") => self.path_exists(p),
            [a, op, b] if op == "=" || op == "==" => a == b,
            [a, op, b] if op == "!=" => a != b,
            [s] => !s.is_empty(),
            _ => false,
        }
    }

    /// An `if … fi` block starting at `lines[start]`; runs the first branch
    /// whose condition holds and returns the index after `fi`.
    fn if_block(
        &mut self,
        lines: &[&str],
        start: usize,
        source: &str,
        chain: &mut BootChain,
    ) -> usize {
        let cond_of = |line: &str| -> Vec<String> {
            let mut w = grub::words(&line.replace(';', " "));
            w.remove(0); // `if` / `elif`
            w.retain(|x| x != "then");
            w
        };
        // Each branch: its condition (none for `else`) and its body, a
        // range of `lines` (sliced, never copied: nested blocks cost no
        // memory per level).
        let mut branches: Vec<(Option<Vec<String>>, std::ops::Range<usize>)> =
            vec![(Some(cond_of(lines[start])), start + 1..start + 1)];
        let mut depth = 0;
        let mut i = start + 1;
        while i < lines.len() {
            let first = grub::words(&lines[i].replace(';', " "))
                .into_iter()
                .next()
                .unwrap_or_default();
            match first.as_str() {
                "if" => depth += 1,
                "fi" if depth == 0 => break,
                "fi" => depth -= 1,
                "elif" if depth == 0 => {
                    branches.push((Some(cond_of(lines[i])), i + 1..i + 1));
                    i += 1;
                    continue;
                }
                "else" if depth == 0 => {
                    branches.push((None, i + 1..i + 1));
                    i += 1;
                    continue;
                }
                _ => {}
            }
            branches.last_mut().expect("one branch").1.end = i + 1;
            i += 1;
        }
        if self.if_depth >= MAX_IF_DEPTH {
            chain.problem(
                "chain.grub-nesting",
                format!("{source}: `if` blocks nested deeper than {MAX_IF_DEPTH}; the inner ones were not evaluated"),
            );
            return i + 1;
        }
        for (cond, body) in branches {
            let holds = match cond {
                None => true,
                Some(c) => {
                    let lookup = |n: &str| self.vars.get(n).cloned();
                    let c: Vec<String> = c.iter().map(|x| grub::expand(x, &lookup)).collect();
                    self.condition(&c, chain)
                }
            };
            if holds {
                self.if_depth += 1;
                self.run_lines(&lines[body], source, chain);
                self.if_depth -= 1;
                break;
            }
        }
        i + 1
    }
    fn root(&self) -> Option<u32> {
        self.vars.get("root").and_then(|r| grub_device(r))
    }

    /// Performs an action; returns whether it succeeded (for `if search …`).
    fn act(&mut self, action: Action, chain: &mut BootChain) -> bool {
        match action {
            Action::Search { by, value, var } => {
                let found = self.search_slot(&by, &value);
                match found {
                    Some(s) => {
                        chain.steps.push(format!(
                            "GRUB `search --{by} {value}` finds slot {}",
                            s.number
                        ));
                        self.vars.insert(var, format!("slot{}", s.number));
                        true
                    }
                    None => {
                        chain
                            .steps
                            .push(format!("GRUB `search --{by} {value}` finds nothing"));
                        false
                    }
                }
            }
            Action::ConfigFile(path) => self.run_path(&path, chain),
            Action::LoadEnv(file) => {
                let f = match file {
                    Some(p) => grub_path(&p, self.root()),
                    None => self
                        .vars
                        .get("prefix")
                        .and_then(|p| grub_path(&format!("{p}/grubenv"), self.root())),
                };
                if let Some(text) = f.as_ref().and_then(|f| self.img.read_text(f, MAX_CONFIG)) {
                    chain
                        .steps
                        .push(format!("GRUB loads environment {}", f.expect("read")));
                    for (k, v) in grub::parse_env(&text) {
                        self.vars.insert(k, v);
                    }
                    return true;
                }
                false
            }
            Action::Blscfg => {
                if !self.has_module("blscfg") {
                    // Real GRUB says `can't find command` here; the entries
                    // are still read so the other rules can judge them.
                    chain.missing_commands.push(format!(
                        "blscfg: not among the {} modules built into GRUB, and no blscfg.mod under $prefix",
                        self.modules.len()
                    ));
                }
                let Some(root) = self.root() else {
                    return false;
                };
                let vars = self.vars.clone();
                let lookup = move |n: &str| vars.get(n).cloned();
                for dir in ["/loader/entries", "/boot/loader/entries"] {
                    let found = bls_dir(self.img, root, dir, &lookup, chain);
                    if !found.is_empty() {
                        chain.steps.push(format!(
                            "GRUB blscfg reads {} entries from {root}:{dir}",
                            found.len()
                        ));
                        // Paths in BLS entries are relative to the partition holding /boot.
                        self.bls.extend(found.into_iter().map(|(_, mut e)| {
                            if dir.starts_with("/boot") {
                                for f in std::iter::once(&mut e.kernel).chain(e.initrds.iter_mut())
                                {
                                    if !f.path.starts_with("/boot/") {
                                        f.path = format!("/boot{}", f.path);
                                    }
                                }
                            }
                            e
                        }));
                        return true;
                    }
                }
                false
            }
        }
    }

    /// `configfile`/`source`/`normal PATH` on the memdisk or the image.
    pub(super) fn run_path(&mut self, path: &str, chain: &mut BootChain) -> bool {
        if !path.starts_with("(memdisk)") {
            return match grub_path(path, self.root()) {
                Some(f) => self.run_file(&f, chain),
                None => {
                    chain.problem(
                        "chain.config-missing",
                        format!("GRUB `configfile {path}`: no root device set"),
                    );
                    false
                }
            };
        }
        if self.hops >= MAX_HOPS {
            chain.problem(
                "chain.config-loop",
                format!("GRUB configuration hops exceed {MAX_HOPS} at {path}"),
            );
            return false;
        }
        self.hops += 1;
        match self.read_config(path) {
            Some((text, label)) => {
                chain.steps.push(format!("GRUB reads its memdisk {label}"));
                self.run(&text, &label, chain);
                true
            }
            None => {
                chain.problem(
                    "chain.config-missing",
                    format!("GRUB configuration {path} is not in GRUB's memdisk"),
                );
                false
            }
        }
    }

    fn run_file(&mut self, f: &FileRef, chain: &mut BootChain) -> bool {
        if self.hops >= MAX_HOPS {
            chain.problem(
                "chain.config-loop",
                format!("GRUB configuration hops exceed {MAX_HOPS} at {f}"),
            );
            return false;
        }
        self.hops += 1;
        let Some(text) = self.img.read_text(f, MAX_CONFIG) else {
            chain.problem(
                "chain.config-missing",
                format!("GRUB configuration {f} does not exist"),
            );
            return false;
        };
        chain.steps.push(format!("GRUB reads {f}"));
        // GRUB sets $config_directory to the directory of the file it reads.
        let dir = f.path.rsplit_once('/').map_or("", |(d, _)| d);
        self.vars
            .insert("config_directory".into(), format!("(slot{}){dir}", f.slot));
        self.run(&text, &f.to_string(), chain);
        true
    }

    pub(super) fn run(&mut self, text: &str, source: &str, chain: &mut BootChain) {
        let lines: Vec<&str> = text.lines().collect();
        self.run_lines(&lines, source, chain);
    }

    /// Runs script lines (a whole file, or the body of an `if` branch).
    fn run_lines(&mut self, lines: &[&str], source: &str, chain: &mut BootChain) {
        let mut i = 0;
        while i < lines.len() {
            let w = grub::words(lines[i]);
            i += 1;
            let Some(cmd) = w.first().map(String::as_str) else {
                continue;
            };
            let lookup = |n: &str| self.vars.get(n).cloned();
            let w: Vec<String> = w.iter().map(|x| grub::expand(x, &lookup)).collect();
            match cmd {
                "if" => {
                    i = self.if_block(lines, i - 1, source, chain);
                }
                "menuentry" => {
                    let (entry, next) = self.menuentry(&w, lines, i);
                    self.menu.push(entry);
                    self.menu_sources.push(source.to_string());
                    i = next;
                }
                "submenu" | "function" => {
                    // Skip the block (its entries are alternatives of the default).
                    let mut depth = lines[i - 1].matches('{').count() as i32
                        - lines[i - 1].matches('}').count() as i32;
                    while depth > 0 && i < lines.len() {
                        depth += lines[i].matches('{').count() as i32
                            - lines[i].matches('}').count() as i32;
                        i += 1;
                    }
                }
                "set" => {
                    if let Some((k, v)) = w.get(1).and_then(|a| a.split_once('=')) {
                        self.vars.insert(k.to_string(), v.to_string());
                    }
                }
                "configfile" | "source" | "normal" => {
                    if let Some(p) = w.get(1) {
                        self.run_path(&p.clone(), chain);
                    }
                }
                "load_env" => {
                    let file = w
                        .iter()
                        .position(|x| x == "-f" || x == "--file")
                        .and_then(|p| w.get(p + 1).cloned());
                    self.act(Action::LoadEnv(file), chain);
                }
                "blscfg" => {
                    self.act(Action::Blscfg, chain);
                }
                c if c.starts_with("search") => {
                    if let Some(a) = grub::search(&w) {
                        self.act(a, chain);
                    }
                }
                _ => {}
            }
        }
    }

    fn menuentry(
        &mut self,
        head: &[String],
        lines: &[&str],
        mut i: usize,
    ) -> (grub::MenuEntry, usize) {
        let mut entry = grub::MenuEntry {
            title: head.get(1).cloned().unwrap_or_default(),
            id: head
                .iter()
                .position(|x| x == "--id")
                .and_then(|p| head.get(p + 1).cloned()),
            root: self.vars.get("root").cloned(),
            ..Default::default()
        };
        let mut depth = head.iter().filter(|x| x.contains('{')).count() as i32;
        let mut vars = self.vars.clone();
        while i < lines.len() && depth > 0 {
            let line = lines[i];
            i += 1;
            depth += line.matches('{').count() as i32 - line.matches('}').count() as i32;
            let lookup = |n: &str| vars.get(n).cloned();
            let w: Vec<String> = grub::words(line)
                .iter()
                .map(|x| grub::expand(x, &lookup))
                .collect();
            match w.first().map(String::as_str) {
                Some("linux" | "linuxefi" | "linux16") if w.len() > 1 => {
                    entry.linux = Some((w[1].clone(), w[2..].to_vec()))
                }
                Some("initrd" | "initrdefi" | "initrd16") => {
                    entry.initrds.extend(w[1..].iter().cloned())
                }
                Some("set") => {
                    if let Some((k, v)) = w.get(1).and_then(|a| a.split_once('=')) {
                        vars.insert(k.to_string(), v.to_string());
                        if k == "root" {
                            entry.root = Some(v.to_string());
                        }
                    }
                }
                Some(c) if c.starts_with("search") => {
                    if let Some(Action::Search { by, value, var }) = grub::search(&w) {
                        let found = self.search_slot(&by, &value);
                        if let Some(s) = found {
                            vars.insert(var.clone(), format!("slot{}", s.number));
                            if var == "root" {
                                entry.root = Some(format!("slot{}", s.number));
                            }
                        }
                    }
                }
                _ => {}
            }
        }
        (entry, i)
    }
}
