//! Platform variants: what the VM System Specification lets differ between
//! two conforming VMs of one architecture (GIC version, ACPI or device
//! tree only, virtio over PCI or MMIO), how `--variants` axes are parsed,
//! which variants exist on which architecture, and their names.

use crate::Arch;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// How virtio devices are attached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    /// virtio-pci behind the PCIe host bridge (the default).
    Pci,
    /// virtio-mmio (aarch64 `virt` only).
    Mmio,
}

impl Transport {
    /// `pci` / `mmio`.
    pub fn name(self) -> &'static str {
        match self {
            Transport::Pci => "pci",
            Transport::Mmio => "mmio",
        }
    }
}

impl fmt::Display for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Transport {
    type Err = String;
    fn from_str(s: &str) -> Result<Transport, String> {
        match s {
            "pci" => Ok(Transport::Pci),
            "mmio" => Ok(Transport::Mmio),
            _ => Err(format!("transport {s:?}: use \"pci\" or \"mmio\"")),
        }
    }
}

/// GIC versions any machine offers (aarch64 `virt`'s; the arch table says
/// which machine has which).
pub const GIC_VERSIONS: [u8; 2] = [3, 2];

/// The platform variant: what the VM System Specification lets differ.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Platform {
    /// aarch64 GIC version (2 or 3); ignored on x86_64.
    pub gic: u8,
    /// ACPI tables offered to the guest (aarch64 can turn them off, leaving
    /// only the device tree); x86_64 always has ACPI.
    pub acpi: bool,
    /// virtio transport.
    pub transport: Transport,
    /// riscv64: the Advanced Interrupt Architecture (APLIC and IMSIC)
    /// instead of the PLIC; absent from the JSON when off.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub aia: bool,
}

impl Default for Platform {
    fn default() -> Self {
        Platform {
            gic: 3,
            acpi: true,
            transport: Transport::Pci,
            aia: false,
        }
    }
}

impl Platform {
    /// The variant's short name on `arch`, one word per axis it has
    /// (`gic3 acpi-on pci`; riscv64: `acpi-on pci`, `acpi-on pci aia`),
    /// else the one machine's name (`q35`).
    pub fn name(&self, arch: Arch) -> String {
        let info = arch.info();
        let mut words = Vec::new();
        if !info.gic_versions.is_empty() {
            words.push(format!("gic{}", self.gic));
        }
        if info.acpi_optional {
            words.push(format!("acpi-{}", if self.acpi { "on" } else { "off" }));
        }
        if info.virtio_mmio {
            words.push(self.transport.to_string());
        }
        if info.aia_optional && self.aia {
            words.push("aia".into());
        }
        if words.is_empty() {
            return info.qemu_machine.into();
        }
        words.join(" ")
    }

    /// Why `arch` cannot have this platform, if it cannot (x86_64 `q35`
    /// always has ACPI and PCI). The default GIC version is "no choice" on
    /// a machine without a GIC; any other names a GIC it lacks.
    pub fn unavailable_on(&self, arch: Arch) -> Option<String> {
        let info = arch.info();
        let machine = info.qemu_machine;
        if !self.acpi && !info.acpi_optional {
            return Some(format!(
                "acpi = false is not available on {arch} ({machine} always has ACPI)"
            ));
        }
        if self.aia && !info.aia_optional {
            return Some(format!("aia is not available on {arch} ({machine})"));
        }
        if self.transport == Transport::Mmio && !info.virtio_mmio {
            return Some(format!(
                "virtio-mmio is not available on {arch} ({machine})"
            ));
        }
        if !info.gic_versions.contains(&self.gic) && self.gic != Platform::default().gic {
            return Some(format!(
                "gic = {} is not available on {arch} ({machine} has no GIC)",
                self.gic
            ));
        }
        None
    }

    /// Whether the guest's virtio devices sit on PCI (so PCIe root ports
    /// and hotplug exist).
    pub fn has_pci(&self, arch: Arch) -> bool {
        self.transport == Transport::Pci || !arch.info().virtio_mmio
    }
}

/// A `--variants` axis that could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AxisError {
    /// What was wrong.
    pub message: String,
    /// How to write it.
    pub hint: &'static str,
}

impl fmt::Display for AxisError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for AxisError {}

/// The variant axes (`gic=2,3 acpi=on,off transport=pci,mmio`): each holds
/// the values to try; an axis not named takes every value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Axes {
    /// GIC versions.
    pub gic: Vec<u8>,
    /// ACPI on / off.
    pub acpi: Vec<bool>,
    /// virtio transports.
    pub transport: Vec<Transport>,
    /// riscv64 AIA off / on (by default off only: name `aia=off,on`).
    pub aia: Vec<bool>,
}

impl Default for Axes {
    fn default() -> Self {
        Axes {
            gic: GIC_VERSIONS.to_vec(),
            acpi: vec![true, false],
            transport: vec![Transport::Pci, Transport::Mmio],
            aia: vec![false],
        }
    }
}

const AXES_HINT: &str = "gic=2,3 acpi=on,off transport=pci,mmio aia=off,on";

impl Axes {
    /// Axes naming just `platform` (one variant: the one a boot used).
    pub fn only(platform: &Platform) -> Axes {
        Axes {
            gic: vec![platform.gic],
            acpi: vec![platform.acpi],
            transport: vec![platform.transport],
            aia: vec![platform.aia],
        }
    }

    /// Parses `AXIS=V1,V2` words; unnamed axes keep every value.
    pub fn parse<S: AsRef<str>>(words: &[S]) -> Result<Axes, AxisError> {
        let mut axes = Axes::default();
        for word in words {
            let word = word.as_ref();
            let (key, values) = word.split_once('=').ok_or_else(|| AxisError {
                message: format!("bad variant axis `{word}`"),
                hint: "write AXIS=V1,V2, e.g. gic=2,3",
            })?;
            let bad = || AxisError {
                message: format!("bad values in `{word}`"),
                hint: AXES_HINT,
            };
            let values: Vec<&str> = values.split(',').filter(|s| !s.is_empty()).collect();
            match key {
                "gic" => {
                    axes.gic = values
                        .iter()
                        .map(|v| v.parse::<u8>().ok().filter(|g| GIC_VERSIONS.contains(g)))
                        .collect::<Option<_>>()
                        .ok_or_else(bad)?
                }
                "acpi" => axes.acpi = on_off(&values).ok_or_else(bad)?,
                "aia" => axes.aia = on_off(&values).ok_or_else(bad)?,
                "transport" => {
                    axes.transport = values
                        .iter()
                        .map(|v| v.parse().ok())
                        .collect::<Option<_>>()
                        .ok_or_else(bad)?
                }
                _ => return Err(bad()),
            }
        }
        Ok(axes)
    }

    /// Every combination of the axes `arch` has (GIC outermost); an axis
    /// it lacks takes the default platform's value alone.
    pub fn platforms(&self, arch: Arch) -> Vec<Platform> {
        let info = arch.info();
        let d = Platform::default();
        fn axis<T: Copy>(has: bool, values: &[T], default: T) -> Vec<T> {
            if has {
                values.to_vec()
            } else {
                vec![default]
            }
        }
        let gics = axis(!info.gic_versions.is_empty(), &self.gic, d.gic);
        let acpis = axis(info.acpi_optional, &self.acpi, d.acpi);
        let transports = axis(info.virtio_mmio, &self.transport, d.transport);
        let aias = axis(info.aia_optional, &self.aia, d.aia);
        let mut out = Vec::new();
        for &gic in &gics {
            for &acpi in &acpis {
                for &transport in &transports {
                    for &aia in &aias {
                        out.push(Platform {
                            gic,
                            acpi,
                            transport,
                            aia,
                        });
                    }
                }
            }
        }
        out
    }
}

/// `on`/`off` words as booleans; `None` when one is neither.
fn on_off(values: &[&str]) -> Option<Vec<bool>> {
    values
        .iter()
        .map(|v| match *v {
            "on" => Some(true),
            "off" => Some(false),
            _ => None,
        })
        .collect()
}

/// Splits `--variants` words into axes and images: the option takes every
/// word up to the next option, so `--variants gic=3 disk.raw` must still
/// find the image. Words with `=` are axes.
pub fn split_axes_and_images(words: &[String]) -> (Vec<String>, Vec<String>) {
    words.iter().cloned().partition(|a| a.contains('='))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn axes_expand_to_every_combination() {
        let all = Axes::default().platforms(Arch::Aarch64);
        assert_eq!(all.len(), 8);
        assert_eq!(all[0], Platform::default());
        let v = Axes::parse(&["gic=2", "acpi=on,off", "transport=mmio"])
            .unwrap()
            .platforms(Arch::Aarch64);
        assert_eq!(v.len(), 2);
        assert!(v
            .iter()
            .all(|p| p.gic == 2 && p.transport == Transport::Mmio));
        assert_eq!(Axes::default().platforms(Arch::X86_64).len(), 1);
        // riscv64 `virt`: ACPI and transport, no GIC axis.
        let rv = Axes::default().platforms(Arch::Riscv64);
        assert_eq!(rv.len(), 4);
        assert!(rv.iter().all(|p| p.gic == Platform::default().gic));
        assert_eq!(rv[3].name(Arch::Riscv64), "acpi-off mmio");
        // AIA only when asked for, and only where the machine offers it.
        let aia = Axes::parse(&["aia=off,on", "acpi=on", "transport=pci"]).unwrap();
        let names: Vec<String> = aia
            .platforms(Arch::Riscv64)
            .iter()
            .map(|p| p.name(Arch::Riscv64))
            .collect();
        assert_eq!(names, ["acpi-on pci", "acpi-on pci aia"]);
        assert_eq!(aia.platforms(Arch::Aarch64).len(), 2);
        assert!(aia.platforms(Arch::Aarch64).iter().all(|p| !p.aia));
        let on = Platform {
            aia: true,
            ..Platform::default()
        };
        assert!(on.unavailable_on(Arch::Aarch64).unwrap().contains("aia"));
        assert!(on.unavailable_on(Arch::Riscv64).is_none());
        assert!(Axes::parse(&["aia=yes"]).is_err());
    }

    #[test]
    fn bad_axes_say_how_to_write_them() {
        let e = Axes::parse(&["gic=4"]).unwrap_err();
        assert_eq!(e.message, "bad values in `gic=4`");
        assert!(Axes::parse(&["nope"]).unwrap_err().hint.contains("AXIS="));
        assert!(Axes::parse(&["transport=virtio"]).is_err());
        assert!(Axes::parse(&["acpi=yes"]).is_err());
        assert!(Axes::parse(&["color=red"]).is_err());
    }

    #[test]
    fn names_and_availability() {
        let p = Platform {
            gic: 2,
            acpi: false,
            transport: Transport::Mmio,
            aia: false,
        };
        assert_eq!(p.name(Arch::Aarch64), "gic2 acpi-off mmio");
        assert_eq!(p.name(Arch::X86_64), "q35");
        assert!(p.unavailable_on(Arch::Aarch64).is_none());
        assert!(p
            .unavailable_on(Arch::X86_64)
            .unwrap()
            .contains("acpi = false"));
        let gic2 = Platform {
            gic: 2,
            ..Platform::default()
        };
        assert!(gic2
            .unavailable_on(Arch::X86_64)
            .unwrap()
            .contains("gic = 2"));
        assert!(Platform::default().unavailable_on(Arch::Riscv64).is_none());
        let mmio = Platform {
            transport: Transport::Mmio,
            ..Platform::default()
        };
        assert!(mmio
            .unavailable_on(Arch::X86_64)
            .unwrap()
            .contains("virtio-mmio"));
        assert!(!mmio.has_pci(Arch::Aarch64));
        assert!(mmio.has_pci(Arch::X86_64));
    }

    #[test]
    fn json_spellings_are_stable() {
        assert_eq!(
            serde_json::to_string(&Platform::default()).unwrap(),
            r#"{"gic":3,"acpi":true,"transport":"pci"}"#
        );
        let aia = Platform {
            aia: true,
            ..Platform::default()
        };
        let json = serde_json::to_string(&aia).unwrap();
        assert_eq!(
            json,
            r#"{"gic":3,"acpi":true,"transport":"pci","aia":true}"#
        );
        assert_eq!(serde_json::from_str::<Platform>(&json).unwrap(), aia);
        assert_eq!("mmio".parse::<Transport>(), Ok(Transport::Mmio));
    }

    #[test]
    fn stray_words_are_images() {
        let (axes, images) =
            split_axes_and_images(&["gic=3".into(), "disk.raw".into(), "acpi=on".into()]);
        assert_eq!(axes, ["gic=3", "acpi=on"]);
        assert_eq!(images, ["disk.raw"]);
    }
}
