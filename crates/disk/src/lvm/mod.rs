//! LVM2: volume groups assembled from the physical volumes found on the
//! disk, and each logical volume as a readable device.
//!
//! Each PV carries the whole VG's metadata (the newest `seqno` wins). A
//! logical volume is a list of segments over the VG's extents: linear
//! (`striped` with one stripe) and striped segments are mapped onto their
//! PVs; other segment types (thin pools, RAID, mirrors, snapshots, caches,
//! VDO) are named and left unread, as is an LV whose PV is missing.
//!
//! Why our own reader: no crate reads LVM2 metadata in-process (the Rust
//! bindings drive liblvm or the `lvm` command, both needing root and the
//! kernel's device mapper, which a static checker must not).

pub mod config;
pub mod pv;

use bootproof_image::{ReadAt, Span, Spans};
use config::{Section, Value};
use serde::Serialize;
use std::io;
use std::sync::Arc;

/// Most volume groups, logical volumes and segments taken from metadata.
const MAX_ITEMS: usize = 4096;

/// A volume group.
#[derive(Serialize, Clone, Debug, schemars::JsonSchema)]
pub struct VolumeGroup {
    /// Its name.
    pub name: String,
    /// Its UUID.
    pub uuid: String,
    /// Extent size in bytes.
    pub extent_size: u64,
    /// Metadata sequence number used.
    pub seqno: u64,
    /// Its PVs: (name in the metadata, UUID, whether found on this disk).
    pub pvs: Vec<(String, String, bool)>,
    /// Its logical volumes.
    pub lvs: Vec<LogicalVolume>,
}

/// A logical volume.
#[derive(Serialize, Clone, schemars::JsonSchema)]
pub struct LogicalVolume {
    /// Its name.
    pub name: String,
    /// Its UUID.
    pub uuid: String,
    /// Size in bytes.
    pub size: u64,
    /// Segment types, in order (`striped`, `thin`, `raid1`, …).
    pub segments: Vec<String>,
    /// Why it cannot be read, when it cannot.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
    /// Its bytes, when readable.
    #[serde(skip)]
    pub device: Option<Arc<dyn ReadAt>>,
    /// Where its bytes lie on the image's disk, in order, when every
    /// segment is linear on a PV directly on the disk (runs that follow
    /// each other are one): a hypervisor can hand exactly those bytes to a
    /// guest as a disk of its own, so the guest reads the LV with no device
    /// mapper. `None` for striped volumes and PVs elsewhere.
    #[serde(skip)]
    pub disk_runs: Option<Vec<DiskRun>>,
}

/// A run of bytes of the image's disk.
#[derive(Serialize, Clone, Copy, Debug, PartialEq, Eq, schemars::JsonSchema)]
pub struct DiskRun {
    /// Its first byte, from the start of the disk.
    pub offset: u64,
    /// Its length in bytes.
    pub size: u64,
}

impl VolumeGroup {
    /// In words, for reports: its PVs, extent size and logical volumes.
    pub fn describe(&self) -> String {
        let here = self.pvs.iter().filter(|p| p.2).count();
        let lvs: Vec<String> = self
            .lvs
            .iter()
            .map(|l| match &l.problem {
                Some(_) => format!("{} (unreadable)", l.name),
                None => l.name.clone(),
            })
            .collect();
        let extent = match self.extent_size {
            e if e % (1 << 20) == 0 => format!("{} MiB", e >> 20),
            e => format!("{} KiB", e >> 10),
        };
        format!(
            "LVM2 volume group {}: {} PVs ({here} on this disk), {extent} extents, logical volumes {}",
            self.name,
            self.pvs.len(),
            lvs.join(", ")
        )
    }
}

impl std::fmt::Debug for LogicalVolume {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogicalVolume")
            .field("name", &self.name)
            .field("size", &self.size)
            .field("segments", &self.segments)
            .field("problem", &self.problem)
            .finish_non_exhaustive()
    }
}

/// A physical volume found on the disk: where (for reports), its device.
pub struct FoundPv {
    /// Where it is (`partition 2`).
    pub place: String,
    /// Its bytes.
    pub device: Arc<dyn ReadAt>,
    /// Its first byte on the image's disk, when it lies directly on it (a
    /// partition, or the whole disk): linear logical volumes on it get
    /// their [`LogicalVolume::disk_runs`].
    pub disk_offset: Option<u64>,
}

/// Everything LVM on a disk: volume groups and what went wrong.
#[derive(Default, Serialize, Clone, Debug, schemars::JsonSchema)]
pub struct Lvm {
    /// Volume groups, in the order their PVs were found.
    pub vgs: Vec<VolumeGroup>,
    /// Damaged labels, metadata and references.
    pub problems: Vec<String>,
}

/// Assembles volume groups from PVs.
pub fn scan(found: &[FoundPv]) -> Lvm {
    let mut lvm = Lvm::default();
    let mut labels = Vec::new();
    for f in found {
        match pv::read_label(&*f.device) {
            Ok(Some(l)) => {
                lvm.problems
                    .extend(l.problems.iter().map(|p| format!("{}: {p}", f.place)));
                labels.push((l, f));
            }
            Ok(None) => lvm.problems.push(format!("{}: no LVM2 label", f.place)),
            Err(e) => lvm.problems.push(format!("{}: {e}", f.place)),
        }
    }
    // Each VG's newest metadata, from whichever of its PVs holds it.
    let mut newest: Vec<(String, u64, Section)> = Vec::new();
    for (label, _) in &labels {
        let Some(text) = &label.metadata else {
            continue;
        };
        let root = match config::parse(text) {
            Ok(r) => r,
            Err(e) => {
                lvm.problems
                    .push(format!("PV {}: metadata: {e}", label.uuid));
                continue;
            }
        };
        for (name, vg) in root.sections {
            let seqno = vg.u64("seqno").unwrap_or(0);
            match newest.iter().position(|(n, _, _)| *n == name) {
                Some(i) if newest[i].1 >= seqno => {}
                Some(i) => newest[i] = (name, seqno, vg),
                None if newest.len() < MAX_ITEMS => newest.push((name, seqno, vg)),
                None => {}
            }
        }
    }
    for (name, seqno, vg) in newest {
        match volume_group(&name, seqno, &vg, &labels) {
            Ok(g) => lvm.vgs.push(g),
            Err(e) => lvm.problems.push(format!("VG {name}: {e}")),
        }
    }
    lvm
}

fn undashed(uuid: &str) -> String {
    uuid.chars().filter(|c| *c != '-').collect()
}

fn volume_group(
    name: &str,
    seqno: u64,
    vg: &Section,
    labels: &[(pv::PvLabel, &FoundPv)],
) -> Result<VolumeGroup, String> {
    let extent_sectors = vg
        .u64("extent_size")
        .filter(|e| *e > 0)
        .ok_or("no extent_size")?;
    let extent_size = extent_sectors
        .checked_mul(512)
        .ok_or("extent_size overflows")?;
    // The VG's PVs by metadata name: UUID, data start, device when found.
    let mut pvs = Vec::new();
    let mut devices: Vec<PvDevice> = Vec::new();
    for (pv_name, pv) in vg
        .section("physical_volumes")
        .map(|s| &s.sections[..])
        .unwrap_or(&[])
        .iter()
        .take(MAX_ITEMS)
    {
        let uuid = pv.str("id").unwrap_or_default().to_string();
        let found = labels
            .iter()
            .find(|(l, _)| l.uuid == undashed(&uuid))
            .map(|(_, f)| *f);
        let start = pv.u64("pe_start").and_then(|s| s.checked_mul(512));
        pvs.push((pv_name.clone(), uuid, found.is_some()));
        let data = found.zip(start).map(|(f, start)| PvData {
            device: Arc::clone(&f.device),
            start,
            disk_offset: f.disk_offset,
        });
        devices.push((pv_name.clone(), data));
    }
    let mut lvs = Vec::new();
    for (lv_name, lv) in vg
        .section("logical_volumes")
        .map(|s| &s.sections[..])
        .unwrap_or(&[])
        .iter()
        .take(MAX_ITEMS)
    {
        lvs.push(logical_volume(lv_name, lv, extent_size, &devices));
    }
    Ok(VolumeGroup {
        name: name.to_string(),
        uuid: vg.str("id").unwrap_or_default().to_string(),
        extent_size,
        seqno,
        pvs,
        lvs,
    })
}

/// A PV found on the disk: its bytes, where its extents start in them,
/// and where it starts on the disk when it lies directly on it.
struct PvData {
    device: Arc<dyn ReadAt>,
    start: u64,
    disk_offset: Option<u64>,
}

/// A PV by its metadata name, with its data when found.
type PvDevice = (String, Option<PvData>);
type PvDevices = [PvDevice];

fn logical_volume(name: &str, lv: &Section, extent: u64, pvs: &PvDevices) -> LogicalVolume {
    let segments: Vec<&Section> = lv
        .sections
        .iter()
        .filter(|(n, _)| n.starts_with("segment"))
        .map(|(_, s)| s)
        .take(MAX_ITEMS)
        .collect();
    let mut out = LogicalVolume {
        name: name.to_string(),
        uuid: lv.str("id").unwrap_or_default().to_string(),
        size: 0,
        segments: segments
            .iter()
            .map(|s| s.str("type").unwrap_or("?").to_string())
            .collect(),
        problem: None,
        device: None,
        disk_runs: None,
    };
    match lv_device(&segments, extent, pvs) {
        Ok((dev, runs)) => {
            out.size = dev.size();
            out.device = Some(Arc::new(dev));
            out.disk_runs = runs;
        }
        Err(e) => out.problem = Some(e),
    }
    out
}

/// The LV's bytes: its segments end to end, in extent order; and where
/// they lie on the disk when every segment is linear there.
fn lv_device(
    segments: &[&Section],
    extent: u64,
    pvs: &PvDevices,
) -> Result<(Spans, Option<Vec<DiskRun>>), String> {
    let mut ordered: Vec<(u64, &Section)> = segments
        .iter()
        .map(|s| {
            Ok((
                s.u64("start_extent")
                    .ok_or("a segment without start_extent")?,
                *s,
            ))
        })
        .collect::<Result<_, String>>()?;
    ordered.sort_by_key(|(start, _)| *start);
    let mut spans = Vec::new();
    let mut next = 0u64;
    // The disk runs so far; `None` once a segment is not on the disk.
    let mut runs: Option<Vec<DiskRun>> = Some(Vec::new());
    for (start, seg) in ordered {
        if start != next {
            return Err(format!("segments leave a gap or overlap at extent {next}"));
        }
        let count = seg
            .u64("extent_count")
            .ok_or("a segment without extent_count")?;
        let kind = seg.str("type").unwrap_or("?");
        if kind != "striped" {
            return Err(format!(
                "a {kind} segment (only linear and striped are read)"
            ));
        }
        let len = count
            .checked_mul(extent)
            .ok_or("a segment's size overflows")?;
        let (device, on_disk) = striped(seg, count, extent, pvs)?;
        spans.push(Span {
            len,
            source: Some((device, 0)),
        });
        runs = runs.zip(on_disk).and_then(|(mut runs, at)| {
            match runs.last_mut() {
                Some(last) if last.offset.checked_add(last.size) == Some(at) => {
                    last.size = last.size.checked_add(len)?
                }
                _ if len > 0 => runs.push(DiskRun {
                    offset: at,
                    size: len,
                }),
                _ => {}
            }
            Some(runs)
        });
        next = start.checked_add(count).ok_or("extents overflow")?;
    }
    let spans = Spans::new(spans).ok_or("the LV's size overflows")?;
    Ok((spans, runs.filter(|r| !r.is_empty())))
}

/// One striped segment (one stripe: linear) over its PVs, and where a
/// linear one starts on the disk when its PV lies directly on it.
fn striped(
    seg: &Section,
    count: u64,
    extent: u64,
    pvs: &PvDevices,
) -> Result<(Arc<dyn ReadAt>, Option<u64>), String> {
    let stripes = seg.list("stripes").ok_or("a segment without stripes")?;
    let n = seg.u64("stripe_count").unwrap_or(1);
    if n == 0 || n as usize * 2 != stripes.len() || !count.is_multiple_of(n) {
        return Err(format!(
            "{n} stripes over {} stripe entries and {count} extents",
            stripes.len() / 2
        ));
    }
    let per_stripe = (count / n)
        .checked_mul(extent)
        .ok_or("a stripe's size overflows")?;
    let mut legs = Vec::new();
    for pair in stripes.chunks_exact(2) {
        let (Value::Str(pv), Value::Int(pe)) = (&pair[0], &pair[1]) else {
            return Err("a stripe entry is not a PV name and an extent".into());
        };
        let Some((_, found)) = pvs.iter().find(|(name, _)| name == pv) else {
            return Err(format!("a stripe on {pv}, which the VG does not list"));
        };
        let Some(data) = found else {
            return Err(format!("its PV {pv} is not on this disk"));
        };
        let from = u64::try_from(*pe)
            .ok()
            .and_then(|pe| pe.checked_mul(extent))
            .and_then(|o| o.checked_add(data.start))
            .filter(|o| {
                o.checked_add(per_stripe)
                    .is_some_and(|end| end <= data.device.size())
            })
            .ok_or_else(|| format!("a stripe at extent {pe} past the end of {pv}"))?;
        legs.push((Arc::clone(&data.device), from, data.disk_offset));
    }
    if n == 1 {
        let (dev, from, disk_offset) = legs.pop().expect("one leg");
        let on_disk = disk_offset.and_then(|d| d.checked_add(from));
        let slice = bootproof_image::Slice::new(dev, from, per_stripe);
        return Ok((Arc::new(slice), on_disk));
    }
    let chunk = seg
        .u64("stripe_size")
        .and_then(|s| s.checked_mul(512))
        .filter(|c| c.is_power_of_two() && *c <= extent)
        .ok_or("a striped segment without a usable stripe_size")?;
    Ok((
        Arc::new(Striped {
            legs: legs.into_iter().map(|(d, from, _)| (d, from)).collect(),
            chunk,
            size: per_stripe * n,
        }),
        None,
    ))
}

/// Striped data: chunk `i` of the segment is on leg `i % legs`, at row
/// `i / legs` of that leg.
struct Striped {
    legs: Vec<(Arc<dyn ReadAt>, u64)>,
    chunk: u64,
    size: u64,
}

impl ReadAt for Striped {
    fn size(&self) -> u64 {
        self.size
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        bootproof_image::check_bounds(offset, buf.len(), self.size)?;
        let n = self.legs.len() as u64;
        bootproof_image::by_block(offset, buf, self.chunk, |at, part| {
            let i = at / self.chunk;
            let (dev, from) = &self.legs[(i % n) as usize];
            dev.read_at(from + (i / n) * self.chunk + at % self.chunk, part)
        })
    }
}

/// The device-mapper name of an LV (`vg-lv`, dashes in either doubled),
/// as `/dev/mapper/` shows it.
pub fn dm_name(vg: &str, lv: &str) -> String {
    format!("{}-{}", vg.replace('-', "--"), lv.replace('-', "--"))
}

#[cfg(test)]
mod tests;
