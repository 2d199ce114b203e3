//! Bytes of the boot disk handed to a guest as a disk of their own (an
//! LVM2 logical volume's extents): which runs, and whether QEMU can join
//! them over the image as it is. [`crate::prepare`] attaches them.

/// Most runs a [`DiskWindow`] may join (LVM2 metadata's own cap on
/// segments).
pub const MAX_WINDOW_RUNS: usize = 4096;

/// Runs of the disk joined, in order, into a disk of their own that the
/// guest finds by its virtio serial (an LVM2 logical volume's extents:
/// the guest reads the volume with no device mapper). One run works on
/// any image format; several need a raw image (QEMU joins them with a
/// VMDK descriptor of flat extents over the file).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiskWindow {
    /// `(offset, size)` in bytes of the disk, in the order the new disk
    /// holds them.
    pub runs: Vec<(u64, u64)>,
    /// Its virtio serial (at most 20 bytes).
    pub serial: String,
}

impl DiskWindow {
    /// Why it cannot be attached to a disk of `disk_size` bytes in
    /// `format`, if it cannot: runs must be whole sectors inside the disk,
    /// at least one and at most [`MAX_WINDOW_RUNS`]; several need `raw`.
    pub fn unfit(&self, disk_size: u64, format: &str) -> Option<String> {
        let inside = |&(offset, size): &(u64, u64)| {
            size > 0
                && offset.is_multiple_of(512)
                && size.is_multiple_of(512)
                && offset.checked_add(size).is_some_and(|end| end <= disk_size)
        };
        if self.runs.is_empty() || self.runs.len() > MAX_WINDOW_RUNS {
            Some(format!(
                "{} runs (1 to {MAX_WINDOW_RUNS} are joined)",
                self.runs.len()
            ))
        } else if let Some((offset, size)) = self.runs.iter().find(|r| !inside(r)) {
            Some(format!(
                "{size} bytes at byte {offset} are not whole sectors inside the {disk_size}-byte disk"
            ))
        } else if self.runs.len() > 1 && format != "raw" {
            Some(format!(
                "{} pieces are joined only over a raw image (QEMU's flat extents), and this one is {format}",
                self.runs.len()
            ))
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::DiskWindow;

    #[test]
    fn a_window_fits_whole_sectors_inside_the_disk_and_pieces_need_raw() {
        let w = |runs: &[(u64, u64)]| DiskWindow {
            runs: runs.to_vec(),
            serial: "s".into(),
        };
        assert_eq!(w(&[(512, 1024)]).unfit(1536, "qcow2"), None);
        assert_eq!(w(&[(4096, 512), (512, 512)]).unfit(8192, "raw"), None);
        let why = |w: DiskWindow, size, format| w.unfit(size, format).unwrap();
        assert!(why(w(&[(512, 1024)]), 1535, "raw").contains("inside the 1535-byte disk"));
        assert!(why(w(&[(1, 512)]), 4096, "raw").contains("whole sectors"));
        assert!(why(w(&[(0, 0)]), 4096, "raw").contains("whole sectors"));
        assert!(why(w(&[(u64::MAX - 511, 1024)]), u64::MAX, "raw").contains("inside"));
        assert!(why(w(&[]), 4096, "raw").contains("0 runs"));
        assert!(why(w(&[(0, 512), (1024, 512)]), 4096, "vmdk").contains("only over a raw image"));
    }
}
