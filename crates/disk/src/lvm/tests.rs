//! A volume group written field by field over two PVs: linear LVs (one
//! spanning both PVs), a striped one, and the kinds that are named but
//! not read.

use super::pv::tests::pv_with;
use super::*;
use bootproof_image::MemImage;

const A: &[u8; 32] = b"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
const B: &[u8; 32] = b"BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB";

/// Extents are 64 KiB (128 sectors); data starts at 512 KiB of each PV.
fn metadata(extra: &str) -> String {
    format!(
        r#"vg0 {{
id = "vg-uuid"
seqno = 7
extent_size = 128
physical_volumes {{
pv0 {{ id = "AAAAAA-AAAA-AAAA-AAAA-AAAA-AAAA-AAAAAA" pe_start = 1024 pe_count = 8 }}
pv1 {{ id = "BBBBBB-BBBB-BBBB-BBBB-BBBB-BBBB-BBBBBB" pe_start = 1024 pe_count = 8 }}
}}
logical_volumes {{
root {{
id = "root-uuid"
segment2 {{ start_extent = 2 extent_count = 1 type = "striped" stripe_count = 1 stripes = ["pv1", 0] }}
segment1 {{ start_extent = 0 extent_count = 2 type = "striped" stripe_count = 1 stripes = ["pv0", 1] }}
}}
data {{
segment1 {{ start_extent = 0 extent_count = 4 type = "striped" stripe_count = 2 stripe_size = 16
stripes = ["pv0", 4, "pv1", 4] }}
}}
pool {{ segment1 {{ start_extent = 0 extent_count = 1 type = "thin-pool" }} }}
{extra}
}}
}}
"#
    )
}

/// Fills each PV's extents with a byte naming (PV, extent, 8 KiB chunk).
fn pvs(text: &str) -> Vec<FoundPv> {
    [A, B]
        .iter()
        .enumerate()
        .map(|(i, uuid)| {
            let mut v = pv_with(text, 512, uuid);
            for at in (512 << 10..1 << 20).step_by(8192) {
                let extent = (at - (512 << 10)) / 65536;
                let chunk = (at % 65536) / 8192;
                v[at..at + 8192].fill((i * 100 + extent * 10 + chunk) as u8);
            }
            FoundPv {
                place: format!("partition {}", i + 1),
                device: Arc::new(MemImage(v)),
                disk_offset: Some((i as u64 + 1) << 20),
            }
        })
        .collect()
}

fn byte(dev: &dyn ReadAt, at: u64) -> u8 {
    let mut b = [0u8];
    dev.read_at(at, &mut b).unwrap();
    b[0]
}

#[test]
fn linear_spanning_and_striped_volumes_map_onto_their_pvs() {
    let lvm = scan(&pvs(&metadata("")));
    assert!(lvm.problems.is_empty(), "{:?}", lvm.problems);
    let vg = &lvm.vgs[0];
    assert_eq!(
        (vg.name.as_str(), vg.extent_size, vg.seqno),
        ("vg0", 65536, 7)
    );
    let lv = |n: &str| vg.lvs.iter().find(|l| l.name == n).unwrap();
    // root: extents 0-1 are pv0's 1-2, extent 2 is pv1's 0.
    let root = lv("root").device.clone().unwrap();
    assert_eq!(root.size(), 3 * 65536);
    assert_eq!(byte(&*root, 0), 10);
    assert_eq!(byte(&*root, 65536 + 8192), 21);
    assert_eq!(byte(&*root, 2 * 65536), 100);
    // data: 8 KiB chunks alternate pv0/pv1 from their extent 4.
    let data = lv("data").device.clone().unwrap();
    assert_eq!(data.size(), 4 * 65536);
    assert_eq!(byte(&*data, 0), 40);
    assert_eq!(byte(&*data, 8192), 140);
    assert_eq!(byte(&*data, 2 * 8192), 41);
    assert_eq!(
        byte(&*data, 17 * 8192),
        150,
        "chunk 17: pv1, row 8 = extent 5 chunk 0"
    );
    let mut across = [0u8; 2];
    data.read_at(8191, &mut across).unwrap();
    assert_eq!(across, [40, 140]);
    // A thin pool is named, not read.
    let pool = lv("pool");
    assert!(pool.device.is_none() && pool.problem.as_ref().unwrap().contains("thin-pool"));
    assert_eq!(dm_name("my-vg", "root-lv"), "my--vg-root--lv");
}

/// Where a linear LV lies on the disk, run by run (runs that follow each
/// other are one); nothing for striped volumes or PVs not on the disk.
#[test]
fn linear_volumes_say_where_they_lie_on_the_disk() {
    let extra = r#"
one { segment1 { start_extent = 0 extent_count = 2 type = "striped" stripe_count = 1 stripes = ["pv1", 5] } }
joined {
segment1 { start_extent = 0 extent_count = 1 type = "striped" stripe_count = 1 stripes = ["pv0", 6] }
segment2 { start_extent = 1 extent_count = 1 type = "striped" stripe_count = 1 stripes = ["pv0", 7] }
}
apart {
segment1 { start_extent = 0 extent_count = 1 type = "striped" stripe_count = 1 stripes = ["pv0", 7] }
segment2 { start_extent = 1 extent_count = 1 type = "striped" stripe_count = 1 stripes = ["pv0", 6] }
}"#;
    let lvm = scan(&pvs(&metadata(extra)));
    let runs = |n: &str| {
        lvm.vgs[0]
            .lvs
            .iter()
            .find(|l| l.name == n)
            .unwrap()
            .disk_runs
            .clone()
    };
    // pv0 starts at 1 MiB of the disk, pv1 at 2 MiB; extents at 512 KiB of each.
    let pv0 = |e: u64| (1 << 20) + (512 << 10) + e * 65536;
    let pv1 = |e: u64| (2 << 20) + (512 << 10) + e * 65536;
    let run = |offset, extents: u64| DiskRun {
        offset,
        size: extents * 65536,
    };
    assert_eq!(runs("one"), Some(vec![run(pv1(5), 2)]));
    assert_eq!(runs("joined"), Some(vec![run(pv0(6), 2)]));
    assert_eq!(runs("apart"), Some(vec![run(pv0(7), 1), run(pv0(6), 1)]));
    // root: extents 0-1 on pv0 from its extent 1, extent 2 on pv1's 0.
    assert_eq!(runs("root"), Some(vec![run(pv0(1), 2), run(pv1(0), 1)]));
    assert_eq!(runs("data"), None, "striped");
    assert_eq!(runs("pool"), None, "unreadable");
    // A PV not directly on the disk gives its LVs no runs.
    let mut found = pvs(&metadata(extra));
    found[1].disk_offset = None;
    let lvm = scan(&found);
    let one = lvm.vgs[0].lvs.iter().find(|l| l.name == "one").unwrap();
    assert_eq!(one.disk_runs, None);
    assert_eq!(byte(&**one.device.as_ref().unwrap(), 65536), 160);
}

#[test]
fn missing_pvs_and_hostile_segments_are_problems_not_panics() {
    // Only pv0 on the disk: root (partly on pv1) is unreadable, named why.
    let mut found = pvs(&metadata(""));
    found.pop();
    let lvm = scan(&found);
    let root = lvm.vgs[0].lvs.iter().find(|l| l.name == "root").unwrap();
    assert!(
        root.problem.as_ref().unwrap().contains("pv1"),
        "{:?}",
        root.problem
    );
    for bad in [
        // A gap between segments; extents past the PV; a PV not listed;
        // stripes not matching their count; absurd counts.
        r#"x { segment1 { start_extent = 1 extent_count = 1 type = "striped" stripe_count = 1 stripes = ["pv0", 0] } }"#,
        r#"x { segment1 { start_extent = 0 extent_count = 9 type = "striped" stripe_count = 1 stripes = ["pv0", 0] } }"#,
        r#"x { segment1 { start_extent = 0 extent_count = 1 type = "striped" stripe_count = 1 stripes = ["pv9", 0] } }"#,
        r#"x { segment1 { start_extent = 0 extent_count = 2 type = "striped" stripe_count = 2 stripes = ["pv0", 0] } }"#,
        r#"x { segment1 { start_extent = 0 extent_count = 9223372036854775807 type = "striped" stripe_count = 1 stripes = ["pv0", 0] } }"#,
        r#"x { segment1 { start_extent = 0 extent_count = 2 type = "striped" stripe_count = 2 stripe_size = 3 stripes = ["pv0", 0, "pv1", 0] } }"#,
    ] {
        let lvm = scan(&pvs(&metadata(bad)));
        let x = lvm.vgs[0].lvs.iter().find(|l| l.name == "x").unwrap();
        assert!(x.device.is_none() && x.problem.is_some(), "{bad}");
    }
    // Unparseable metadata is a problem; no label is a problem.
    let lvm = scan(&pvs("vg0 {"));
    assert!(lvm.vgs.is_empty() && !lvm.problems.is_empty());
    let none = scan(&[FoundPv {
        place: "partition 9".into(),
        device: Arc::new(MemImage(vec![0; 4096])),
        disk_offset: None,
    }]);
    assert!(none.problems[0].contains("no LVM2 label"));
}
