//! Who QEMU runs as. QEMU parses the untrusted image and emulates devices
//! for an untrusted guest; when bootproof runs as root (common in CI), QEMU
//! is told to switch to an unprivileged user (`-run-with user=uid:gid`)
//! once its devices are set up and before the guest runs, and the run
//! directory is handed to that user.

use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// Environment variable naming the user QEMU runs as when bootproof runs
/// as root: `uid:gid`, a user name from `/etc/passwd`, or `root` to keep
/// QEMU privileged.
pub const QEMU_USER_ENV: &str = "BOOTPROOF_QEMU_USER";

/// The default unprivileged identity: `nobody:nogroup` by number, so it
/// works in containers without a passwd entry for it.
pub const DEFAULT_RUN_AS: RunAs = RunAs {
    uid: 65534,
    gid: 65534,
};

/// A numeric identity for QEMU to switch to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, schemars::JsonSchema)]
pub struct RunAs {
    /// User id.
    pub uid: u32,
    /// Group id (also the only supplementary group).
    pub gid: u32,
}

impl RunAs {
    /// The identity for this process's QEMU: `None` when bootproof is not
    /// root (QEMU already runs unprivileged) or [`QEMU_USER_ENV`] is `root`.
    pub fn for_this_process() -> Result<Option<RunAs>, String> {
        let euid = std::fs::metadata("/proc/self")
            .map(|m| m.uid())
            .map_err(|e| format!("reading /proc/self: {e}"))?;
        if euid != 0 {
            return Ok(None);
        }
        match std::env::var(QEMU_USER_ENV) {
            Err(_) => Ok(Some(DEFAULT_RUN_AS)),
            Ok(v) => {
                let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
                RunAs::parse(&v, &passwd)
            }
        }
    }

    /// Parses a [`QEMU_USER_ENV`] value against an `/etc/passwd` text.
    pub fn parse(value: &str, passwd: &str) -> Result<Option<RunAs>, String> {
        let value = value.trim();
        if value == "root" || value == "0:0" {
            return Ok(None);
        }
        if let Some((u, g)) = value.split_once(':') {
            let num = |s: &str| s.parse::<u32>().ok();
            return match (num(u), num(g)) {
                (Some(uid), Some(gid)) if uid != 0 && gid != 0 => Ok(Some(RunAs { uid, gid })),
                _ => Err(format!(
                    "{QEMU_USER_ENV}={value}: want uid:gid with both non-zero, a user name, or root"
                )),
            };
        }
        passwd
            .lines()
            .map(|l| l.split(':').collect::<Vec<_>>())
            .find(|f| f.len() >= 4 && f[0] == value)
            .and_then(|f| Some((f[2].parse().ok()?, f[3].parse().ok()?)))
            .filter(|&(uid, gid)| uid != 0 && gid != 0)
            .map(|(uid, gid)| Some(RunAs { uid, gid }))
            .ok_or_else(|| format!("{QEMU_USER_ENV}={value}: no such non-root user in /etc/passwd"))
    }

    /// QEMU's `-run-with` value.
    pub fn qemu_arg(self) -> String {
        format!("user={}:{}", self.uid, self.gid)
    }

    /// Hands the run directory and what is in it to this identity, so QEMU
    /// can still open files there after it switched (hotplug, logs).
    pub fn own(self, dir: &Path) -> io::Result<()> {
        std::os::unix::fs::chown(dir, Some(self.uid), Some(self.gid))?;
        for e in std::fs::read_dir(dir)? {
            let p = e?.path();
            std::os::unix::fs::lchown(&p, Some(self.uid), Some(self.gid))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD: &str = "root:x:0:0:root:/root:/bin/bash\n\
        nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n\
        qemu:x:107:112::/var/lib/qemu:/usr/sbin/nologin\n";

    #[test]
    fn values_parse_to_identities_or_say_what_is_wanted() {
        let p = |v| RunAs::parse(v, PASSWD);
        assert_eq!(p("qemu"), Ok(Some(RunAs { uid: 107, gid: 112 })));
        assert_eq!(
            p("1000:1000"),
            Ok(Some(RunAs {
                uid: 1000,
                gid: 1000
            }))
        );
        assert_eq!(p("root"), Ok(None));
        assert_eq!(p("0:0"), Ok(None));
        for bad in ["0:5", "5:0", "x:1", "ghost", ""] {
            let e = p(bad).unwrap_err();
            assert!(e.contains(QEMU_USER_ENV), "{bad}: {e}");
        }
        assert_eq!(DEFAULT_RUN_AS.qemu_arg(), "user=65534:65534");
    }
}
