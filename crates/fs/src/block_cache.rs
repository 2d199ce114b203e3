//! A few cached blocks in front of a [`ReadAt`] for the small reads some
//! filesystem crates make: fatfs reads each FAT entry (2 or 4 bytes) and
//! each directory entry's fields (1, 11 bytes) with their own read, which
//! was one `pread(2)` each — 1.2 million of them to walk one 32 MiB test
//! volume. Eight 4 KiB blocks (round-robin) hold the FAT sectors and the
//! directory cluster being walked; reads larger than [`SMALL`] go
//! straight through. Fixed memory, whatever the volume.

use bootproof_image::ReadAt;
use std::io;
use std::sync::Arc;

/// Block size cached.
const BLOCK: u64 = 4096;
/// Blocks kept.
const SLOTS: usize = 8;
/// Reads up to this size are served from the cache.
const SMALL: usize = 512;

/// A [`ReadAt`] with [`SLOTS`] cached blocks for small reads.
pub(crate) struct BlockCache {
    dev: Arc<dyn ReadAt>,
    /// (block index, its bytes: shorter at the device's end).
    slots: Vec<(u64, Vec<u8>)>,
    next: usize,
}

impl BlockCache {
    /// Caches small reads of `dev`.
    pub(crate) fn new(dev: Arc<dyn ReadAt>) -> BlockCache {
        BlockCache {
            dev,
            slots: Vec::with_capacity(SLOTS),
            next: 0,
        }
    }

    /// The device's size.
    pub(crate) fn size(&self) -> u64 {
        self.dev.size()
    }

    /// Fills `buf` from `pos`, like [`ReadAt::read_at`].
    pub(crate) fn read_at(&mut self, pos: u64, buf: &mut [u8]) -> io::Result<()> {
        let index = pos / BLOCK;
        let offset = (pos % BLOCK) as usize;
        let within_one = offset + buf.len() <= BLOCK as usize;
        if buf.len() > SMALL || !within_one {
            return self.dev.read_at(pos, buf);
        }
        let slot = match self.slots.iter().position(|(i, _)| *i == index) {
            Some(slot) => slot,
            None => self.load(index)?,
        };
        let block = &self.slots[slot].1;
        let end = offset + buf.len();
        if end > block.len() {
            // Past the device's end: let the device say so.
            return self.dev.read_at(pos, buf);
        }
        buf.copy_from_slice(&block[offset..end]);
        Ok(())
    }

    /// Reads block `index` into a slot, returning the slot.
    fn load(&mut self, index: u64) -> io::Result<usize> {
        let start = index * BLOCK;
        let len = self.dev.size().saturating_sub(start).min(BLOCK) as usize;
        let mut bytes = vec![0u8; len];
        self.dev.read_at(start, &mut bytes)?;
        if self.slots.len() < SLOTS {
            self.slots.push((index, bytes));
            return Ok(self.slots.len() - 1);
        }
        let slot = self.next;
        self.next = (self.next + 1) % SLOTS;
        self.slots[slot] = (index, bytes);
        Ok(slot)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// Bytes `i as u8` at offset `i`, counting reads.
    struct Counting {
        size: u64,
        reads: AtomicUsize,
    }

    impl ReadAt for Counting {
        fn read_at(&self, pos: u64, buf: &mut [u8]) -> io::Result<()> {
            self.reads.fetch_add(1, Ordering::Relaxed);
            if pos + buf.len() as u64 > self.size {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            for (i, b) in buf.iter_mut().enumerate() {
                *b = (pos + i as u64) as u8;
            }
            Ok(())
        }
        fn size(&self) -> u64 {
            self.size
        }
    }

    #[test]
    fn small_reads_come_from_cached_blocks_and_read_the_same_bytes() {
        let dev = Arc::new(Counting {
            size: 100_000,
            reads: AtomicUsize::new(0),
        });
        let mut cache = BlockCache::new(dev.clone());
        let mut two = [0u8; 2];
        for pos in (0..4096).step_by(2) {
            cache.read_at(pos, &mut two).unwrap();
            assert_eq!(two, [pos as u8, (pos + 1) as u8]);
        }
        assert_eq!(dev.reads.load(Ordering::Relaxed), 1, "one block read");
        // Across a block boundary, large, or past the end: straight through.
        cache.read_at(4095, &mut two).unwrap();
        assert_eq!(two, [4095u64 as u8, 4096u64 as u8]);
        let mut big = vec![0u8; 1024];
        cache.read_at(100, &mut big).unwrap();
        assert_eq!(big[0], 100);
        assert!(cache.read_at(99_999, &mut two).is_err());
        let mut last = [0u8; 1];
        cache.read_at(99_999, &mut last).unwrap();
        assert_eq!(last[0], 99_999u64 as u8);
        // Nine blocks in turn: the first is evicted, memory stays 8 blocks.
        for b in 0..9u64 {
            cache.read_at(b * BLOCK, &mut two).unwrap();
        }
        assert!(cache.slots.len() <= SLOTS);
    }
}
