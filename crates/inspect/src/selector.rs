//! `[PART:]PATH` targets, as `bootproof ls`/`cat` take them.

/// How a partition is named on the command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PartSelector {
    /// Partition number (`2`); `0` means the whole disk.
    Number(u32),
    /// Filesystem label (`LABEL=boot`).
    Label(String),
    /// Filesystem UUID (`UUID=…`, case-insensitive).
    Uuid(String),
    /// GPT partition name (`PARTLABEL=…`).
    PartLabel(String),
    /// GPT unique GUID or MBR `SSSSSSSS-NN` (`PARTUUID=…`, case-insensitive).
    PartUuid(String),
    /// An LVM2 logical volume (`LV=vg/lv`, `/dev/vg/lv`, `/dev/mapper/vg-lv`).
    Lv {
        /// Volume group.
        vg: String,
        /// Logical volume.
        lv: String,
    },
}

impl std::fmt::Display for PartSelector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PartSelector::Number(n) => write!(f, "{n}"),
            PartSelector::Label(s) => write!(f, "LABEL={s}"),
            PartSelector::Uuid(s) => write!(f, "UUID={s}"),
            PartSelector::PartLabel(s) => write!(f, "PARTLABEL={s}"),
            PartSelector::PartUuid(s) => write!(f, "PARTUUID={s}"),
            PartSelector::Lv { vg, lv } => write!(f, "LV={vg}/{lv}"),
        }
    }
}

impl PartSelector {
    /// The selector a device reference names, as `root=`, `resume=` and
    /// `/etc/fstab` write them: `UUID=…`, `PARTUUID=…`, `LABEL=…`,
    /// `PARTLABEL=…` (quotes allowed) or `/dev/disk/by-{uuid,partuuid,
    /// label,partlabel}/…`. `None` for references that cannot be resolved
    /// statically (kernel device names, device mapper, network roots).
    pub fn from_device_ref(spec: &str) -> Option<PartSelector> {
        let spec = spec.trim_matches('"');
        let by = |dir: &str| spec.strip_prefix(dir).map(str::to_string);
        if let Some(v) = by("/dev/disk/by-uuid/") {
            return Some(PartSelector::Uuid(v));
        }
        if let Some(v) = by("/dev/disk/by-partuuid/") {
            return Some(PartSelector::PartUuid(v));
        }
        if let Some(v) = by("/dev/disk/by-label/") {
            return Some(PartSelector::Label(v));
        }
        if let Some(v) = by("/dev/disk/by-partlabel/") {
            return Some(PartSelector::PartLabel(v));
        }
        if let Some(dm) = by("/dev/mapper/") {
            return lv_from_dm_name(&dm);
        }
        if let Some(rest) = by("/dev/") {
            // /dev/VG/LV: two components, not one of the kernel's own dirs.
            if let Some((vg, lv)) = rest.split_once('/') {
                let kernel_dirs = [
                    "disk", "mapper", "md", "block", "char", "bus", "input", "net",
                ];
                if !lv.contains('/')
                    && !vg.is_empty()
                    && !lv.is_empty()
                    && !kernel_dirs.contains(&vg)
                {
                    return Some(lv_selector(vg, lv));
                }
            }
            return None;
        }
        let (key, value) = spec.split_once('=')?;
        let value = value.to_string();
        match key {
            "UUID" => Some(PartSelector::Uuid(value)),
            "PARTUUID" => Some(PartSelector::PartUuid(value)),
            "LABEL" => Some(PartSelector::Label(value)),
            "PARTLABEL" => Some(PartSelector::PartLabel(value)),
            "LV" => value.split_once('/').map(|(vg, lv)| lv_selector(vg, lv)),
            _ => None,
        }
    }
}

fn lv_selector(vg: &str, lv: &str) -> PartSelector {
    PartSelector::Lv {
        vg: vg.to_string(),
        lv: lv.to_string(),
    }
}

/// Splits a device-mapper name (`vg-lv`, dashes within either doubled).
fn lv_from_dm_name(dm: &str) -> Option<PartSelector> {
    let bytes = dm.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'-' {
            if bytes.get(i + 1) == Some(&b'-') {
                i += 2;
                continue;
            }
            let (vg, lv) = (&dm[..i], &dm[i + 1..]);
            if vg.is_empty() || lv.is_empty() {
                return None;
            }
            return Some(lv_selector(&vg.replace("--", "-"), &lv.replace("--", "-")));
        }
        i += 1;
    }
    None
}

/// A parsed target: optional partition and a path inside it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The partition, when given.
    pub part: Option<PartSelector>,
    /// The path (always starting with `/`).
    pub path: String,
}

/// Parses `[PART:]PATH`. A prefix counts as PART only when it is a number or
/// a `KEY=` selector, so paths that contain `:` still work.
pub fn parse_target(s: &str) -> Target {
    let norm = |p: &str| {
        if p.starts_with('/') {
            p.to_string()
        } else {
            format!("/{p}")
        }
    };
    if let Some((head, rest)) = s.split_once(':') {
        let part = if !head.is_empty() && head.bytes().all(|b| b.is_ascii_digit()) {
            head.parse().ok().map(PartSelector::Number)
        } else if let Some((key, value)) = head.split_once('=') {
            let v = value.to_string();
            match key {
                "LABEL" => Some(PartSelector::Label(v)),
                "UUID" => Some(PartSelector::Uuid(v)),
                "PARTLABEL" => Some(PartSelector::PartLabel(v)),
                "PARTUUID" => Some(PartSelector::PartUuid(v)),
                "LV" => v.split_once('/').map(|(vg, lv)| lv_selector(vg, lv)),
                _ => None,
            }
        } else {
            None
        };
        if let Some(part) = part {
            return Target {
                part: Some(part),
                path: norm(rest),
            };
        }
    }
    Target {
        part: None,
        path: norm(s),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_references_become_selectors() {
        let sel = |s| PartSelector::from_device_ref(s);
        assert_eq!(sel("UUID=ab-cd"), Some(PartSelector::Uuid("ab-cd".into())));
        assert_eq!(
            sel("\"PARTUUID=6d0e-02\""),
            Some(PartSelector::PartUuid("6d0e-02".into()))
        );
        assert_eq!(
            sel("/dev/disk/by-label/root"),
            Some(PartSelector::Label("root".into()))
        );
        assert_eq!(
            sel("/dev/disk/by-partlabel/ESP"),
            Some(PartSelector::PartLabel("ESP".into()))
        );
        let lv = |vg: &str, lv: &str| Some(lv_selector(vg, lv));
        assert_eq!(sel("/dev/mapper/vg-root"), lv("vg", "root"));
        assert_eq!(sel("/dev/mapper/my--vg-root--fs"), lv("my-vg", "root-fs"));
        assert_eq!(sel("/dev/rhel/root"), lv("rhel", "root"));
        assert_eq!(sel("LV=ubuntu-vg/ubuntu-lv"), lv("ubuntu-vg", "ubuntu-lv"));
        assert_eq!(
            parse_target("LV=vg/root:/etc/fstab").part,
            Some(lv_selector("vg", "root"))
        );
        for unresolvable in [
            "/dev/vda2",
            "/dev/mapper/novgname",
            "/dev/mapper/-x",
            "/dev/disk/by-id/x",
            "/dev/md/0",
            "nfs:host:/x",
            "FOO=1",
        ] {
            assert_eq!(sel(unresolvable), None, "{unresolvable}");
        }
    }

    #[test]
    fn parses_selectors_and_plain_paths() {
        assert_eq!(
            parse_target("2:/etc/fstab"),
            Target {
                part: Some(PartSelector::Number(2)),
                path: "/etc/fstab".into()
            }
        );
        assert_eq!(
            parse_target("LABEL=ESP:EFI/BOOT"),
            Target {
                part: Some(PartSelector::Label("ESP".into())),
                path: "/EFI/BOOT".into()
            }
        );
        assert_eq!(
            parse_target("PARTUUID=abcd-01:/"),
            Target {
                part: Some(PartSelector::PartUuid("abcd-01".into())),
                path: "/".into()
            }
        );
        assert_eq!(
            parse_target("/a:b/c"),
            Target {
                part: None,
                path: "/a:b/c".into()
            }
        );
        assert_eq!(
            parse_target("FOO=x:/y"),
            Target {
                part: None,
                path: "/FOO=x:/y".into()
            }
        );
        assert_eq!(
            parse_target("etc"),
            Target {
                part: None,
                path: "/etc".into()
            }
        );
    }
}
