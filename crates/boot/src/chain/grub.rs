//! GRUB in the chain: from the GRUB binary on the ESP to its configuration
//! (the embedded memdisk or prefix, then `grub.cfg`), run through the
//! interpreter ([`super::grub_script`]), to boot entries.

use super::grub_script::{grub_device, grub_path, GrubState};
use super::*;

pub(super) fn grub_chain(img: &OpenedImage, grub_bin: &FileRef, arch: Arch, chain: &mut BootChain) {
    let dir = grub_bin
        .path
        .rsplit_once('/')
        .map_or("", |(d, _)| d)
        .to_string();
    let embedded = vol(img, grub_bin.slot)
        .and_then(|v| v.read_limited(grub_bin.path.as_bytes(), MAX_EFI).ok())
        .and_then(|data| {
            pe::analyze(&data).and_then(|i| crate::grub_image::parse(&data, i.pe32_plus))
        })
        .unwrap_or_default();
    let here = format!("(slot{}){dir}", grub_bin.slot);
    let prefix = match embedded.prefix.as_deref() {
        Some(p) if p.starts_with('(') => p.to_string(),
        Some(p) if !p.is_empty() => format!("(slot{}){p}", grub_bin.slot),
        _ => here.clone(),
    };
    let mut state = start(img, grub_bin.slot, &here, &prefix, arch);
    state.memdisk = embedded.memdisk.clone();
    state.modules = embedded.modules.clone();
    if prefix.starts_with("(memdisk)") {
        state.vars.insert("root".into(), "memdisk".into());
    }
    if let Some(config) = &embedded.config {
        // An embedded config runs first (Debian's: `normal (memdisk)/grub.cfg`).
        chain
            .steps
            .push(format!("GRUB runs the config embedded in {grub_bin}"));
        state.run(config, &format!("{grub_bin} (embedded config)"), chain);
    } else {
        // Otherwise normal mode reads $prefix/grub.cfg; distribution GRUBs
        // without an embedded config read grub.cfg beside themselves.
        let candidates = [format!("{prefix}/grub.cfg"), format!("{here}/grub.cfg")];
        match candidates.iter().find(|c| state.path_exists(c)) {
            Some(c) => {
                let c = c.clone();
                state.run_path(&c, chain);
            }
            None => {
                chain.problem(
                    "chain.config-missing",
                    format!(
                        "no grub.cfg at {} or {}: GRUB would stop at its prompt",
                        candidates[0], candidates[1]
                    ),
                );
                return;
            }
        }
    }
    finish_grub(state, chain);
}

/// A fresh interpreter with the variables GRUB's EFI core sets before
/// running anything.
fn start<'a>(
    img: &'a OpenedImage,
    slot: u32,
    here: &str,
    prefix: &str,
    arch: Arch,
) -> GrubState<'a> {
    let mut state = GrubState {
        img,
        vars: HashMap::new(),
        hops: 0,
        menu: Vec::new(),
        menu_sources: Vec::new(),
        bls: Vec::new(),
        memdisk: Default::default(),
        if_depth: 0,
        modules: Default::default(),
    };
    for (k, v) in [
        ("root", format!("slot{slot}")),
        ("prefix", prefix.to_string()),
        ("cmdpath", here.to_string()),
        ("grub_cpu", arch.info().grub_cpu.into()),
        ("grub_platform", "efi".into()),
    ] {
        state.vars.insert(k.into(), v);
    }
    state
}

/// Runs `config` as the grub.cfg beside a GRUB binary in `/EFI/BOOT` of
/// `slot` with no embedded config (the fuzz targets' way in).
pub(super) fn grub_config(
    img: &OpenedImage,
    slot: u32,
    arch: Arch,
    config: &str,
    chain: &mut BootChain,
) {
    let here = format!("(slot{slot})/EFI/BOOT");
    let mut state = start(img, slot, &here, &here, arch);
    state.run(config, "fuzz input", chain);
    finish_grub(state, chain);
}

/// Turns the interpreted menu (and blscfg entries) into boot entries.
fn finish_grub(state: GrubState<'_>, chain: &mut BootChain) {
    // GRUB waits for a key when `timeout` is unset or negative.
    let source = state
        .menu_sources
        .first()
        .cloned()
        .unwrap_or_else(|| "the GRUB configuration".into());
    chain.menu_timeout = Some(match state.vars.get("timeout") {
        Some(v) => MenuTimeout {
            value: v.clone(),
            source,
            waits_for_key: v.trim().parse::<i64>().is_ok_and(|t| t < 0),
        },
        None => MenuTimeout {
            value: "unset".into(),
            source,
            waits_for_key: true,
        },
    });
    let default = state
        .vars
        .get("default")
        .cloned()
        .unwrap_or_else(|| "0".into());
    let default = if default == "${saved_entry}" || default.is_empty() {
        state
            .vars
            .get("saved_entry")
            .cloned()
            .unwrap_or_else(|| "0".into())
    } else {
        default
    };
    let mut entries: Vec<BootEntry> = Vec::new();
    for (e, source) in state.menu.iter().zip(&state.menu_sources) {
        let Some((kernel, args)) = &e.linux else {
            continue;
        };
        let root = e.root.as_deref().and_then(grub_device);
        let Some(kernel) = grub_path(kernel, root) else {
            chain.problem(
                "chain.no-root",
                format!("menu entry `{}`: no root device for {kernel}", e.title),
            );
            continue;
        };
        entries.push(BootEntry {
            title: e.title.clone(),
            source: source.clone(),
            kernel,
            initrds: e
                .initrds
                .iter()
                .filter_map(|i| grub_path(i, root))
                .collect(),
            cmdline: args.join(" "),
            default: false,
            uki: false,
            version: None,
        });
    }
    entries.extend(state.bls);
    let idx = default
        .parse::<usize>()
        .ok()
        .or_else(|| {
            entries.iter().position(|e| {
                e.title == default
                    || state
                        .menu
                        .iter()
                        .any(|m| m.id.as_deref() == Some(default.as_str()) && m.title == e.title)
            })
        })
        .unwrap_or(0);
    if let Some(e) = entries.get_mut(idx) {
        e.default = true;
    }
    chain.entries = entries;
}
