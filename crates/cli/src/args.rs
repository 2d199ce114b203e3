//! Argument groups and values several commands share, declared once: the
//! image, output form, architecture, agent mode and seed, boot deadline
//! and command-line additions.

use bootproof_platform::Arch;
use clap::ValueEnum;
use std::path::PathBuf;

/// Options shared by every command that opens one image.
#[derive(clap::Args, Clone)]
pub struct ImageArgs {
    /// Disk image: raw, or qcow2 (v2/v3; deflate- or zstd-compressed clusters).
    pub image: PathBuf,
    /// Follow qcow2 backing files. Off by default: a backing path recorded in an
    /// untrusted image should not make bootproof open host files unasked.
    #[arg(long)]
    pub allow_backing: bool,
}

impl ImageArgs {
    /// Opens the image read-only with these options.
    pub fn open(&self) -> Result<bootproof_inspect::OpenedImage, bootproof_runtime::Error> {
        bootproof_runtime::image::open(&self.image, self.allow_backing)
    }
}

/// Output options shared by every command.
#[derive(clap::Args, Clone, Copy)]
pub struct OutputArgs {
    /// Print machine-readable JSON (schemas in docs/json.md).
    #[arg(long)]
    pub json: bool,
    /// Colour human output: auto (a terminal and NO_COLOR unset), always, never.
    #[arg(long, value_enum, default_value_t = ColorChoice::Auto)]
    pub color: ColorChoice,
}

/// When to colour human output.
#[derive(Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum ColorChoice {
    /// Colour when the stream is a terminal and NO_COLOR is unset.
    Auto,
    /// Always colour.
    Always,
    /// Never colour.
    Never,
}

/// `--arch`: `auto` (the image's own) or an architecture.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ArchChoice(pub Option<Arch>);

impl std::str::FromStr for ArchChoice {
    type Err = String;
    fn from_str(s: &str) -> Result<ArchChoice, String> {
        match s {
            "auto" => Ok(ArchChoice(None)),
            a => a
                .parse()
                .map(|a| ArchChoice(Some(a)))
                .map_err(|e| format!("{e}")),
        }
    }
}

/// `--arch` for commands that read or boot one image.
#[derive(clap::Args, Clone, Copy)]
pub struct ArchArgs {
    /// Guest architecture: auto (from the removable path or root partition type), aarch64, x86_64.
    #[arg(long, default_value = "auto", value_name = "auto|aarch64|x86_64")]
    pub arch: ArchChoice,
}

/// Agent or full mode (`verify`, `run`).
#[derive(Clone, Copy, ValueEnum, PartialEq, Eq, Default)]
pub enum ModeArg {
    /// The image's kernel with bootproof's initramfs (seconds per boot).
    #[default]
    Agent,
    /// The image boots end to end; its cloud-init or Ignition runs the
    /// agent (minutes per boot under TCG).
    Full,
}

impl From<ModeArg> for bootproof_runtime::Mode {
    fn from(m: ModeArg) -> Self {
        match m {
            ModeArg::Agent => bootproof_runtime::Mode::Agent,
            ModeArg::Full => bootproof_runtime::Mode::Full,
        }
    }
}

/// Full mode's seed.
#[derive(Clone, Copy, ValueEnum, PartialEq, Eq, Default)]
pub enum SeedArg {
    /// From the image: cloud-init if it has it, else Ignition.
    #[default]
    Auto,
    /// A cloud-init NoCloud volume (FAT labelled CIDATA).
    Nocloud,
    /// An Ignition config in fw_cfg.
    Ignition,
}

impl From<SeedArg> for bootproof_runtime::SeedChoice {
    fn from(s: SeedArg) -> Self {
        use bootproof_runtime::deliver::SeedKind;
        use bootproof_runtime::SeedChoice;
        match s {
            SeedArg::Auto => SeedChoice::Auto,
            SeedArg::Nocloud => SeedChoice::Kind(SeedKind::NoCloud),
            SeedArg::Ignition => SeedChoice::Kind(SeedKind::Ignition),
        }
    }
}

/// How the agent reaches the guest (`verify`, `run`).
#[derive(clap::Args, Clone, Copy)]
pub struct AgentModeArgs {
    /// How the agent reaches the guest.
    #[arg(long, value_enum, default_value_t = ModeArg::Agent)]
    pub mode: ModeArg,
    /// Full mode's seed.
    #[arg(long, value_enum, default_value_t = SeedArg::Auto)]
    pub seed: SeedArg,
}

/// Options for booting the agent with the image's kernel (`verify`, `run`).
#[derive(clap::Args, Clone)]
pub struct BootTuningArgs {
    /// Seconds each boot may take [default: 60 with KVM, 300 with TCG; twice that in full mode].
    #[arg(long, value_name = "SECS")]
    pub timeout: Option<u64>,
    /// Agent mode: text appended to the kernel command line (e.g.
    /// `initcall_blacklist=efi_rtc_driver_init` to see a kernel without its
    /// EFI RTC driver fail `rtc.efi`).
    #[arg(long, value_name = "TEXT")]
    pub cmdline_append: Option<String>,
    /// Boots at once [default: the host's cores; `run`: within 75% of available memory].
    #[arg(long, value_name = "N")]
    pub jobs: Option<usize>,
}
