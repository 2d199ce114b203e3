//! How a guest gets the agent: the mode and seed choices `verify` and
//! `run` share, with their stable spellings (`agent`, `full`; `auto`,
//! `nocloud`, `ignition`).

use crate::deliver::{self, SeedKind};
use crate::Error;
use bootproof_inspect::OpenedImage;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// Agent mode or full mode.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// The image's kernel with bootproof's initramfs (seconds per boot).
    #[default]
    Agent,
    /// The image boots end to end; a seed runs the agent (minutes under TCG).
    Full,
}

impl Mode {
    /// `agent` / `full`.
    pub fn name(self) -> &'static str {
        match self {
            Mode::Agent => "agent",
            Mode::Full => "full",
        }
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Mode {
    type Err = String;
    fn from_str(s: &str) -> Result<Mode, String> {
        match s {
            "agent" => Ok(Mode::Agent),
            "full" => Ok(Mode::Full),
            _ => Err(format!("mode {s:?}: use agent or full")),
        }
    }
}

/// Full mode's seed: chosen from the image, or named.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum SeedChoice {
    /// cloud-init if the image has it, else Ignition if it has that.
    #[default]
    Auto,
    /// This seed, whatever the image has.
    Kind(SeedKind),
}

impl FromStr for SeedChoice {
    type Err = String;
    fn from_str(s: &str) -> Result<SeedChoice, String> {
        match s {
            "auto" => Ok(SeedChoice::Auto),
            other => SeedKind::parse(other)
                .map(SeedChoice::Kind)
                .ok_or_else(|| format!("seed {other:?}: use auto, nocloud or ignition")),
        }
    }
}

impl SeedChoice {
    /// The seed for this image, or why there is none.
    pub fn resolve(self, img: &OpenedImage) -> Result<SeedKind, Error> {
        match self {
            SeedChoice::Kind(k) => Ok(k),
            SeedChoice::Auto => deliver::detect_seed(img).ok_or_else(|| {
                Error::with_hint(
                    "full mode needs cloud-init or Ignition in the image, and it has neither \
                     (no /usr/bin/cloud-init, no Ignition dracut module)",
                    "agent mode (the default) needs neither; --seed nocloud|ignition overrides the detection",
                )
            }),
        }
    }
}

/// The error both `verify` and `run` give for `--cmdline-append` in full mode.
pub(crate) fn cmdline_needs_agent_mode() -> Error {
    Error::with_hint(
        "--cmdline-append applies to agent mode: in full mode the image's boot chain owns the kernel command line",
        "drop --mode full, or change the command line in the image",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spellings() {
        assert_eq!("full".parse::<Mode>(), Ok(Mode::Full));
        assert_eq!(Mode::Agent.to_string(), "agent");
        assert!("fast".parse::<Mode>().is_err());
        assert_eq!(
            "cloud-init".parse::<SeedChoice>(),
            Ok(SeedChoice::Kind(SeedKind::NoCloud))
        );
        assert_eq!("auto".parse::<SeedChoice>(), Ok(SeedChoice::Auto));
        assert!("floppy".parse::<SeedChoice>().is_err());
        assert_eq!(serde_json::to_string(&Mode::Full).unwrap(), "\"full\"");
    }
}
