//! What a cloud-init image does when it boots with no datasource, read
//! from the image's own `ds-identify` (the systemd generator's helper
//! that decides whether cloud-init runs, and with which datasources).
//!
//! `ds-identify`'s policy ends in `notfound=disabled` or
//! `notfound=enabled`. Disabled: with no datasource found, cloud-init does
//! not run at all, so there is no search to cut (a seed would only make it
//! run its modules: on Debian 12's x86_64 cloud image, 38 s to the login
//! prompt without a seed, 72 s with one, under TCG). Enabled: cloud-init
//! runs and tries every datasource in its list, the network ones
//! included; that is Debian 12's aarch64 default (cloud-init 22.4 reads
//! no DMI there), where a seed ends the search at once. The policy comes
//! from `/etc/cloud/ds-identify.cfg` when it sets one, else from the
//! script's per-architecture default.
//!
//! Only text of bounded size is read, line by line; nothing is executed.

use bootproof_boot::chain::glob;
use bootproof_inspect::OpenedImage;
use bootproof_platform::Arch;

/// The image's `ds-identify`.
const DS_IDENTIFY: &str = "/usr/lib/cloud-init/ds-identify";
/// Its configuration file.
const DS_IDENTIFY_CFG: &str = "/etc/cloud/ds-identify.cfg";
/// The script is ~60 KiB; anything much larger is not it.
const MAX_SCRIPT: u64 = 512 << 10;
/// The configuration file is a few lines.
const MAX_CFG: u64 = 64 << 10;

/// Whether cloud-init, booted with no datasource, searches for one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoDatasource {
    /// It runs and tries its datasources in turn (`false`: ds-identify
    /// disables cloud-init when it finds none).
    pub searches: bool,
    /// Where that was read, in words.
    pub evidence: String,
}

/// Reads the image's ds-identify policy for `arch`. When it cannot be
/// read, cloud-init is taken to search (the seed is then the safe choice).
pub fn without_datasource(img: &OpenedImage, arch: Arch) -> NoDatasource {
    let read = |path: &str, limit| {
        img.slots.iter().find_map(|s| {
            let v = s.volume.as_ref()?;
            v.read_limited(path.as_bytes(), limit).ok()
        })
    };
    let script = read(DS_IDENTIFY, MAX_SCRIPT);
    let cfg = read(DS_IDENTIFY_CFG, MAX_CFG);
    let script = script.as_deref().map(String::from_utf8_lossy);
    let cfg = cfg.as_deref().map(String::from_utf8_lossy);
    judge(script.as_deref(), cfg.as_deref(), arch.name())
}

/// The verdict from the texts of ds-identify (`script`) and its
/// configuration file (`cfg`) for `machine` (`uname -m`, which is what
/// [`Arch::name`] spells for both architectures). Public for the fuzz
/// target.
pub fn judge(script: Option<&str>, cfg: Option<&str>, machine: &str) -> NoDatasource {
    let name = machine;
    let default = script.and_then(|s| default_policy(s, name));
    let configured = cfg.and_then(configured_policy);
    match (configured, default) {
        (Some(p), d) => decide(&p, d.as_deref(), DS_IDENTIFY_CFG),
        (None, Some(d)) => decide(&d, None, &format!("{DS_IDENTIFY}'s default on {name}")),
        (None, None) => NoDatasource {
            searches: true,
            evidence: match script {
                None => format!("no {DS_IDENTIFY}: cloud-init runs and tries its datasources"),
                Some(_) => {
                    format!("{DS_IDENTIFY} names no default policy for {name} that bootproof reads")
                }
            },
        },
    }
}

/// The verdict of one policy string (`mode,found=…,maybe=…,notfound=…`);
/// a field it leaves out comes from `default`, as ds-identify fills it.
fn decide(policy: &str, default: Option<&str>, source: &str) -> NoDatasource {
    let field = |p: &str| -> Option<String> {
        p.split(',')
            .find_map(|f| f.trim().strip_prefix("notfound="))
            .map(str::to_string)
    };
    let mode = policy.split(',').next().unwrap_or_default().trim();
    let notfound = field(policy).or_else(|| default.and_then(field));
    let searches = match mode {
        // ds-identify only gates: cloud-init runs its own list.
        "enabled" | "report" => true,
        "disabled" => false,
        _ => notfound.as_deref() != Some("disabled"),
    };
    NoDatasource {
        searches,
        evidence: format!("policy {policy:?} ({source})"),
    }
}

/// `policy: …` in ds-identify.cfg.
fn configured_policy(cfg: &str) -> Option<String> {
    cfg.lines()
        .filter_map(|l| l.trim().strip_prefix("policy:"))
        .map(|p| p.trim().trim_matches(['"', '\'']).to_string())
        .find(|p| !p.is_empty())
}

/// The policy the script picks for `machine` (`uname -m`): its
/// `DI_DEFAULT_POLICY*="…"` assignments, and the `case "$DI_UNAME_MACHINE"`
/// branch that names one of them.
fn default_policy(script: &str, machine: &str) -> Option<String> {
    let mut values: Vec<(&str, String)> = Vec::new();
    for line in script.lines() {
        let line = line.trim();
        if let Some((name, rest)) = line.split_once("=\"") {
            if name.starts_with("DI_DEFAULT_POLICY") && !name.contains(' ') {
                let value = rest.split('"').next().unwrap_or_default();
                let value = value
                    .replace("${DI_DISABLED}", "disabled")
                    .replace("${DI_ENABLED}", "enabled");
                values.push((name, value));
            }
        }
    }
    let mut in_case = false;
    for line in script.lines() {
        let line = line.trim();
        if line.starts_with("case \"$DI_UNAME_MACHINE\" in") {
            in_case = true;
            continue;
        }
        if line.starts_with("esac") {
            in_case = false;
        }
        if !in_case || line.starts_with('#') {
            continue;
        }
        let Some((patterns, body)) = line.split_once(')') else {
            continue;
        };
        let Some(name) = body
            .split_once("${")
            .and_then(|(_, r)| r.split_once('}'))
            .map(|(n, _)| n)
            .filter(|n| n.starts_with("DI_DEFAULT_POLICY"))
        else {
            continue;
        };
        if patterns.split('|').any(|p| glob(p.trim(), machine)) {
            return values
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| v.clone());
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The lines that matter of Debian 12's ds-identify (cloud-init 22.4).
    const SCRIPT: &str = r#"
DI_DEFAULT_POLICY="search,found=all,maybe=none,notfound=${DI_DISABLED}"
DI_DEFAULT_POLICY_NO_DMI="search,found=all,maybe=none,notfound=${DI_ENABLED}"
read_uname_info() {
    case "$DI_UNAME_MACHINE" in
        i?86|x86_64) DI_PLATFORM=pc;;
    esac
}
_read_config() {
    case "$DI_UNAME_MACHINE" in
        # these have dmi data
        i?86|x86_64) def=${DI_DEFAULT_POLICY};;
        # aarch64 has dmi, but not currently used (LP: #1663304)
        aarch64) def=${DI_DEFAULT_POLICY_NO_DMI};;
        *) def=${DI_DEFAULT_POLICY_NO_DMI};;
    esac
}
"#;

    #[test]
    fn debian_12_searches_on_aarch64_only() {
        let x86 = default_policy(SCRIPT, "x86_64").unwrap();
        assert_eq!(x86, "search,found=all,maybe=none,notfound=disabled");
        assert!(!decide(&x86, None, "s").searches);
        let arm = default_policy(SCRIPT, "aarch64").unwrap();
        assert!(decide(&arm, None, "s").searches);
        // The catch-all branch.
        assert!(decide(&default_policy(SCRIPT, "riscv64").unwrap(), None, "s").searches);
        assert_eq!(default_policy("echo hi", "x86_64"), None);
    }

    #[test]
    fn the_configuration_file_and_modes_decide_first() {
        let cfg = "# local\npolicy: search,found=all,maybe=all,notfound=enabled\n";
        let p = configured_policy(cfg).unwrap();
        assert!(decide(&p, None, "cfg").searches);
        assert_eq!(configured_policy("datasource: Ec2\n"), None);
        assert!(!decide("disabled", None, "s").searches);
        assert!(decide("enabled,notfound=disabled", None, "s").searches);
        assert!(decide("report", None, "s").searches);
        // Fields left out come from the script's default.
        assert!(!decide("search", Some("search,notfound=disabled"), "s").searches);
        assert!(decide("search", Some("search,notfound=enabled"), "s").searches);
    }
}
