//! The NoCloud seed volume as independent tools read it: blkid must see a
//! FAT filesystem labelled CIDATA (what cloud-init's ds-identify asks for)
//! and mtools must read back every file byte for byte.

use bootproof_vm::seed::{write_nocloud, SeedFile};
use std::process::Command;

fn tool(cmd: &mut Command) -> Vec<u8> {
    let out = cmd
        .output()
        .expect("tool runs (scripts/setup-test-deps.sh)");
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

#[test]
fn nocloud_volume_reads_back_with_blkid_and_mtools() {
    let dir = std::env::temp_dir().join(format!("bootproof-seed-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let img = dir.join("seed.img");
    // A binary the size of the agent, with every byte value.
    let big: Vec<u8> = (0..3_000_000u32).map(|i| (i * 7 + i / 251) as u8).collect();
    let files = [
        ("user-data", b"#cloud-config\nruncmd: []\n".to_vec()),
        ("meta-data", b"instance-id: test\n".to_vec()),
        ("bootproof/agent", big),
        ("bootproof/config.json", b"{}".to_vec()),
    ];
    let seed: Vec<SeedFile> = files
        .iter()
        .map(|(p, d)| SeedFile {
            path: p.to_string(),
            data: d.clone(),
            mode: 0o644,
        })
        .collect();
    write_nocloud(&img, &seed).unwrap();

    let probe = String::from_utf8(tool(
        Command::new("blkid").args(["-p", "-o", "export"]).arg(&img),
    ))
    .unwrap();
    assert!(probe.contains("LABEL=CIDATA"), "{probe}");
    assert!(probe.contains("TYPE=vfat"), "{probe}");

    for (path, data) in &files {
        let back = tool(
            Command::new("mtype")
                .env("MTOOLS_SKIP_CHECK", "1")
                .args(["-i"])
                .arg(&img)
                .arg(format!("::/{path}")),
        );
        assert!(back == *data, "{path}: {} bytes back", back.len());
    }
    // Long names survive as written (cloud-init looks for `user-data`).
    let listing = String::from_utf8(tool(
        Command::new("mdir")
            .env("MTOOLS_SKIP_CHECK", "1")
            .args(["-i"])
            .arg(&img)
            .arg("::/"),
    ))
    .unwrap();
    assert!(
        listing.contains("user-data") && listing.contains("meta-data"),
        "{listing}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
