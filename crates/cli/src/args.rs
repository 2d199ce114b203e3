//! Argument groups and values several commands share, declared once: the
//! image, output form, architecture, agent mode and seed, boot deadline
//! and command-line additions.

use bootproof_platform::{Arch, Platform, Transport};
use bootproof_runtime::boot::{firmware_choice, BootMode, BootRequest};
use clap::ValueEnum;
use std::path::PathBuf;

/// Options shared by every command that opens one image.
#[derive(clap::Args, Clone)]
pub struct ImageArgs {
    /// Disk image: raw, qcow2 (v2/v3; deflate- or zstd-compressed clusters),
    /// VHD or VHDX (fixed or dynamic), or VMDK (monolithicSparse,
    /// streamOptimized, or a descriptor with flat or sparse extents); also in an
    /// OVA or tar, or xz/gzip/zstd-compressed (unpacked once into the cache).
    pub image: PathBuf,
    /// Follow qcow2 backing files, and VMDK extent files outside the
    /// descriptor's directory. Off by default: a path recorded in an untrusted
    /// image should not make bootproof open host files unasked.
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
    /// Print machine-readable JSON (docs/json.md; `bootproof schemas` writes
    /// its JSON Schema).
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
    /// Guest architecture: auto (from the removable path or root partition type), aarch64, x86_64 or riscv64.
    #[arg(long, default_value = "auto", value_name = "ARCH")]
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
    /// Boots at once [default: the host's cores]; a VM starts only while its memory (-m + 256 MiB) fits in 75% of what was available.
    #[arg(long, value_name = "N")]
    pub jobs: Option<usize>,
}

/// The VM a firmware or direct boot runs in (`boot`, `prove`).
#[derive(clap::Args, Clone)]
pub struct VmArgs {
    /// auto (UEFI from QEMU's firmware descriptors), none (direct mode only:
    /// no UEFI), or CODE[,VARS] pflash files.
    #[arg(long, default_value = "auto", value_name = "auto|none|CODE[,VARS]")]
    pub firmware: String,
    /// Secure Boot under STORE (as for `check`; built-in stores and certificate
    /// directories are written into a copy of the enrolled store).
    #[arg(long, value_name = "STORE", num_args = 0..=1, require_equals = true,
          default_missing_value = bootproof_runtime::secure_boot::DEFAULT_STORE)]
    pub secure_boot: Option<String>,
    /// Seconds before the boot is declared timed out [default: 60 with KVM, 300 with TCG].
    #[arg(long, value_name = "SECS")]
    pub timeout: Option<u64>,
    /// Keep the run directory (overlay, NVRAM, sockets) and print its path.
    #[arg(long)]
    pub keep: bool,
    /// Write the console log here [default: ~/.cache/bootproof/logs/IMAGE-TIME.log].
    #[arg(long, value_name = "FILE")]
    pub console_log: Option<PathBuf>,
    /// vCPUs [default: 2, or fewer on a smaller host].
    #[arg(long)]
    pub cpus: Option<u32>,
    /// Guest memory in MiB.
    #[arg(long, default_value_t = 1024, value_name = "MIB")]
    pub memory: u64,
    /// aarch64: GIC version (2 or 3).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u8).range(2..=3))]
    pub gic: u8,
    /// aarch64, riscv64: offer ACPI tables (off leaves only the device tree).
    #[arg(long, default_value = "on", value_parser = ["on", "off"])]
    pub acpi: String,
    /// aarch64, riscv64: virtio transport.
    #[arg(long, default_value = "pci", value_parser = transport_parser())]
    pub transport: Transport,
    /// riscv64: the AIA interrupt controllers (APLIC, IMSIC) instead of the PLIC.
    #[arg(long)]
    pub aia: bool,
    /// Attach a user-mode network card (off by default: firmware would try
    /// network boot first).
    #[arg(long)]
    pub network: bool,
    /// Fail (exit 1) a boot whose console showed problems: failed units,
    /// kernel warnings or oopses, device timeouts, OOM kills, fsck errors.
    #[arg(long)]
    pub strict: bool,
    /// Boot a cloud-init image without bootproof's empty NoCloud seed (its
    /// datasource search may then wait minutes on metadata services).
    #[arg(long)]
    pub no_seed: bool,
}

impl VmArgs {
    /// A firmware boot request of `image` with these options.
    pub fn request(&self, image: &ImageArgs, arch: &ArchArgs) -> BootRequest {
        BootRequest {
            image: image.image.clone(),
            allow_backing: image.allow_backing,
            arch: arch.arch.0,
            mode: BootMode::Firmware,
            firmware: firmware_choice(&self.firmware),
            secure_boot: self.secure_boot.clone(),
            entry: None,
            cmdline_append: None,
            timeout: self.timeout,
            until: None,
            keep: self.keep,
            console_log: self.console_log.clone(),
            cpus: self.cpus,
            memory_mib: self.memory,
            platform: Platform {
                gic: self.gic,
                acpi: self.acpi == "on",
                transport: self.transport,
                aia: self.aia,
            },
            network: self.network,
            no_seed: self.no_seed,
        }
    }
}

/// `pci` or `mmio`, listed in `--help`.
fn transport_parser() -> impl clap::builder::TypedValueParser<Value = Transport> {
    use clap::builder::TypedValueParser;
    clap::builder::PossibleValuesParser::new(["pci", "mmio"])
        .map(|s| s.parse::<Transport>().expect("one of the listed values"))
}
