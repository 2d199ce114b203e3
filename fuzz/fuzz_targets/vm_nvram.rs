//! Fuzzes the EDK2 variable-store reader with hostile NVRAM files, and the
//! writer that rewrites one (a Secure Boot store written into a template).
#![no_main]
use bootproof_vm::nvram;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(vars) = nvram::variables(data) else {
        return;
    };
    assert!(vars.len() <= 10_000);
    for v in &vars {
        assert_eq!(v.size, v.data.len());
    }
    // Rewriting keeps the size and every live variable it keeps, and what
    // it wrote reads back.
    let db = nvram::NewVariable {
        name: "db".into(),
        guid: [7; 16],
        attributes: 0x27,
        data: vec![1, 2, 3],
    };
    if let Ok(out) = nvram::rewrite(data, |v| v.name != "db", std::slice::from_ref(&db)) {
        assert_eq!(out.len(), data.len());
        let back = nvram::variables(&out).expect("a rewritten store reads");
        let kept = vars.iter().filter(|v| v.name != "db").count();
        assert_eq!(back.len(), kept + 1);
        assert_eq!(back[kept].data, db.data);
    }
});
