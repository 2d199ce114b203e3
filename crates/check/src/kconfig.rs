//! What a kernel provides: from `/boot/config-<version>`, or failing that
//! from `/lib/modules/<version>/modules.builtin` and the module files.

use bootproof_boot::modules::{self, InImage};
use bootproof_inspect::{OpenedImage, Slot};
use std::collections::{HashMap, HashSet};

/// Whether a feature is present.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum State {
    /// Built into the kernel.
    Builtin,
    /// A loadable module.
    Module,
    /// Not configured.
    Absent,
    /// The evidence available cannot tell.
    Unknown,
}

#[derive(Debug, Clone)]
pub(crate) struct KernelFeatures {
    /// Where the facts come from (for evidence).
    pub source: String,
    config: Option<HashMap<String, String>>,
    builtin: HashSet<String>,
    modules: HashSet<String>,
}

fn norm(m: &str) -> String {
    m.replace('-', "_")
}

impl KernelFeatures {
    /// Looks for the kernel's config (root first, then every filesystem: a
    /// separate /boot has it at its top level).
    pub(crate) fn find(
        img: &OpenedImage,
        root: Option<&Slot>,
        version: &str,
    ) -> Option<KernelFeatures> {
        let slots = root.into_iter().chain(img.slots.iter());
        for slot in slots {
            let Some(v) = &slot.volume else { continue };
            for path in [
                format!("/boot/config-{version}"),
                format!("/config-{version}"),
            ] {
                if let Ok(text) = v.read_limited(path.as_bytes(), 4 << 20) {
                    let config = String::from_utf8_lossy(&text)
                        .lines()
                        .filter_map(|l| l.strip_prefix("CONFIG_"))
                        .filter_map(|l| l.split_once('='))
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                        .collect();
                    return Some(KernelFeatures {
                        source: format!("{}:{path}", slot.number),
                        config: Some(config),
                        builtin: HashSet::new(),
                        modules: HashSet::new(),
                    });
                }
            }
        }
        for slot in root.into_iter().chain(img.slots.iter()) {
            let Some(v) = &slot.volume else { continue };
            for base in [
                format!("/lib/modules/{version}"),
                format!("/usr/lib/modules/{version}"),
            ] {
                let src = InImage {
                    volume: v,
                    dir: base.clone(),
                };
                let Some(builtin) = modules::builtin(&src) else {
                    continue;
                };
                let builtin = builtin.into_iter().collect();
                let modules = modules::index(&src).into_keys().collect();
                return Some(KernelFeatures {
                    source: format!("{}:{base}/modules.builtin", slot.number),
                    config: None,
                    builtin,
                    modules,
                });
            }
        }
        None
    }

    /// The state of `CONFIG_<sym>` (module name `module` for the fallback).
    pub(crate) fn state(&self, sym: &str, module: &str) -> State {
        if let Some(c) = &self.config {
            return match c.get(sym).map(String::as_str) {
                Some("y") => State::Builtin,
                Some("m") => State::Module,
                _ => State::Absent,
            };
        }
        if module.is_empty() {
            return State::Unknown;
        }
        let m = norm(module);
        if self.builtin.contains(&m) {
            State::Builtin
        } else if self.modules.contains(&m) {
            State::Module
        } else {
            State::Unknown
        }
    }
}
