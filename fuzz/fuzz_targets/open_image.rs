//! Fuzzes the whole open path as every command runs it: image format
//! (raw or qcow2), partition table, slots, filesystem probes, El Torito,
//! then the boot chain for both architectures and every check rule
//! (kernel config, fstab and command-line parsers included). The input is
//! a sparse 1 GiB device (see `SparseDev`), so seeds keep real layouts.
#![no_main]
use bootproof_fuzz::SparseDev;
use bootproof_image::{Image, ReadAt};
use bootproof_inspect::OpenedImage;
use bootproof_platform::Arch;
use libfuzzer_sys::fuzz_target;
use std::sync::Arc;

fuzz_target!(|data: &[u8]| {
    bootproof_fuzz::quiet_contained_panics();
    let dev: Arc<dyn ReadAt> = Arc::new(SparseDev::decode(data));
    let Ok(image) = Image::from_reader(dev, "fuzz") else {
        return;
    };
    let Ok(img) = OpenedImage::from_image(image) else {
        return;
    };
    for (_, v) in img.volumes_root_first() {
        let _ = v.read_dir(b"/");
    }
    for arch in Arch::ALL {
        let chain = bootproof_boot::chain::follow(&img, arch);
        let _ = chain.default_entry();
    }
    let _ = bootproof_check::check(&img, Arch::X86_64);
});
