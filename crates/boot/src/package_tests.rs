use super::*;

/// An ar archive with the given members (name, data).
fn ar(members: &[(&str, &[u8])]) -> Vec<u8> {
    let mut out = b"!<arch>\n".to_vec();
    for (name, data) in members {
        out.extend(
            format!(
                "{:<16}{:<12}{:<6}{:<6}{:<8}{:<10}`\n",
                name,
                0,
                0,
                0,
                100644,
                data.len()
            )
            .as_bytes(),
        );
        out.extend(*data);
        if data.len() % 2 == 1 {
            out.push(b'\n');
        }
    }
    out
}

/// A tarball with raw header names (bypassing the tar crate's own path
/// checks, as a hostile package would).
fn tarball(files: &[(&str, tar::EntryType, &[u8])]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (path, kind, data) in files {
        let mut h = tar::Header::new_gnu();
        h.as_gnu_mut().unwrap().name[..path.len()].copy_from_slice(path.as_bytes());
        h.set_entry_type(*kind);
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        b.append(&h, *data).unwrap();
    }
    b.into_inner().unwrap()
}

fn files_of(deb: &[u8]) -> Result<Vec<(String, Vec<u8>)>, PackageError> {
    let mut seen = Vec::new();
    walk_deb(deb, Path::new("t.deb"), &mut |p, r| {
        let mut v = Vec::new();
        r.read_to_end(&mut v)?;
        seen.push((p.display().to_string(), v));
        Ok(())
    })?;
    Ok(seen)
}

#[test]
fn reads_regular_files_and_skips_escapes_links_and_devices() {
    let data = tarball(&[
        (
            "./boot/vmlinuz-6.1.0-1-arm64",
            tar::EntryType::Regular,
            b"kernel",
        ),
        ("../../etc/passwd", tar::EntryType::Regular, b"evil"),
        ("/etc/shadow", tar::EntryType::Regular, b"evil"),
        (
            "./lib/modules/6.1.0-1-arm64/build",
            tar::EntryType::Symlink,
            b"",
        ),
        ("./dev/sda", tar::EntryType::Block, b""),
        (
            "./lib/modules/6.1.0-1-arm64/kernel/a.ko",
            tar::EntryType::Regular,
            b"mod",
        ),
    ]);
    let deb = ar(&[
        ("debian-binary", b"2.0\n"),
        ("control.tar", b""),
        ("data.tar", &data),
    ]);
    let seen = files_of(&deb).unwrap();
    assert_eq!(
        seen,
        vec![
            ("boot/vmlinuz-6.1.0-1-arm64".to_string(), b"kernel".to_vec()),
            (
                "lib/modules/6.1.0-1-arm64/kernel/a.ko".to_string(),
                b"mod".to_vec()
            ),
        ]
    );
}

#[test]
fn damaged_packages_are_errors_not_panics() {
    // Not an ar archive at all.
    assert!(matches!(files_of(b"hello"), Err(PackageError::Corrupt(_))));
    // No data member.
    let e = files_of(&ar(&[("debian-binary", b"2.0\n")])).unwrap_err();
    assert!(
        e.to_string()
            .contains("no data.tar member (members: debian-binary)"),
        "{e}"
    );
    // An unknown compression.
    let e = files_of(&ar(&[("data.tar.lzma", b"x")])).unwrap_err();
    assert!(matches!(e, PackageError::Unsupported(_)), "{e}");
    // A data tarball that is garbage under its xz name.
    assert!(files_of(&ar(&[("data.tar.xz", b"garbage")])).is_err());
    // Truncated: every prefix of a good package fails cleanly or reads a prefix.
    let data = tarball(&[("./boot/vmlinuz-1", tar::EntryType::Regular, &[7u8; 3000])]);
    let deb = ar(&[("debian-binary", b"2.0\n"), ("data.tar", &data)]);
    for cut in (0..deb.len()).step_by(97) {
        let _ = files_of(&deb[..cut]);
    }
}

#[test]
fn abandoned_partials_are_removed_and_live_ones_kept() {
    let dir = std::env::temp_dir().join(format!("bootproof-abandoned-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join(".abc.999999999.123")).unwrap();
    std::fs::write(dir.join(".download.999999999.part"), b"x").unwrap();
    let mine = format!(".download.{}.part", std::process::id());
    std::fs::write(dir.join(&mine), b"x").unwrap();
    std::fs::create_dir_all(dir.join("0123abcd")).unwrap();
    remove_abandoned(&dir);
    let mut left: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    left.sort();
    assert_eq!(left, vec![mine, "0123abcd".to_string()]);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn clean_paths_stay_inside() {
    assert_eq!(clean_path(Path::new("./a/./b")), Some(PathBuf::from("a/b")));
    assert_eq!(clean_path(Path::new("a/../../b")), None);
    assert_eq!(clean_path(Path::new("/a")), None);
    assert_eq!(clean_path(Path::new("./")), None);
}
