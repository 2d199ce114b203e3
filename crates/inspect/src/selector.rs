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
}

impl std::fmt::Display for PartSelector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PartSelector::Number(n) => write!(f, "{n}"),
            PartSelector::Label(s) => write!(f, "LABEL={s}"),
            PartSelector::Uuid(s) => write!(f, "UUID={s}"),
            PartSelector::PartLabel(s) => write!(f, "PARTLABEL={s}"),
            PartSelector::PartUuid(s) => write!(f, "PARTUUID={s}"),
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
        let (key, value) = spec.split_once('=')?;
        let value = value.to_string();
        match key {
            "UUID" => Some(PartSelector::Uuid(value)),
            "PARTUUID" => Some(PartSelector::PartUuid(value)),
            "LABEL" => Some(PartSelector::Label(value)),
            "PARTLABEL" => Some(PartSelector::PartLabel(value)),
            _ => None,
        }
    }
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
        for unresolvable in ["/dev/vda2", "/dev/mapper/vg-root", "nfs:host:/x", "FOO=1"] {
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
