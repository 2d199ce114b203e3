//! A stream handed to another thread in bounded blocks. The image's readers
//! are not `Send` (a filesystem may keep `Rc` state), so the thread that
//! opened the image reads the raw bytes and a worker decodes them: `check`
//! decompresses the initramfs there while this thread runs the other rules.

use bootproof_boot::decompress::read_full;
use std::io::{self, Read};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};

/// Bytes per block sent.
const BLOCK: usize = 256 << 10;

/// Blocks that may wait in the channel: at most `IN_FLIGHT × BLOCK` bytes
/// (4 MiB) are held, whatever the stream's size.
pub(crate) const IN_FLIGHT: usize = 16;

/// The reading end, on the thread that owns the source.
pub(crate) struct Feeder<'a> {
    src: Box<dyn Read + 'a>,
    tx: SyncSender<io::Result<Vec<u8>>>,
}

/// The decoding end: a `Read` over the blocks as they arrive; a read error
/// of the source arrives as the same error.
pub(crate) struct BlockReader {
    rx: Receiver<io::Result<Vec<u8>>>,
    block: Vec<u8>,
    at: usize,
}

/// Connects `src` to a [`BlockReader`] that may be moved to another thread.
pub(crate) fn pipe(src: Box<dyn Read + '_>) -> (Feeder<'_>, BlockReader) {
    let (tx, rx) = sync_channel(IN_FLIGHT);
    let reader = BlockReader {
        rx,
        block: Vec::new(),
        at: 0,
    };
    (Feeder { src, tx }, reader)
}

impl Feeder<'_> {
    /// Sends up to `blocks` blocks (all of the stream with `None`). Returns
    /// false once the stream has ended, failed, or the reader hung up.
    pub(crate) fn feed(&mut self, blocks: Option<usize>) -> bool {
        let mut sent = 0;
        while blocks.is_none_or(|n| sent < n) {
            let mut block = vec![0u8; BLOCK];
            let item = match read_full(&mut self.src, &mut block) {
                Ok(0) => return false,
                Ok(n) => {
                    block.truncate(n);
                    Ok(block)
                }
                Err(e) => Err(e),
            };
            let failed = item.is_err();
            if self.tx.send(item).is_err() || failed {
                return false;
            }
            sent += 1;
        }
        true
    }
}

impl Read for BlockReader {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while self.at == self.block.len() {
            match self.rx.recv() {
                Ok(Ok(block)) => {
                    self.block = block;
                    self.at = 0;
                }
                Ok(Err(e)) => return Err(e),
                // The feeder is gone: the end of the stream.
                Err(_) => return Ok(0),
            }
        }
        let n = out.len().min(self.block.len() - self.at);
        out[..n].copy_from_slice(&self.block[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A reader that fails after `ok` bytes.
    struct FailsAfter {
        ok: usize,
    }

    impl Read for FailsAfter {
        fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
            if self.ok == 0 {
                return Err(io::Error::other("bad sector"));
            }
            let n = out.len().min(self.ok);
            out[..n].fill(7);
            self.ok -= n;
            Ok(n)
        }
    }

    #[test]
    fn bytes_arrive_in_order_across_blocks_and_threads() {
        let data: Vec<u8> = (0..(3 * BLOCK + 123)).map(|i| (i % 251) as u8).collect();
        let (mut feeder, mut reader) = pipe(Box::new(&data[..]));
        let got = std::thread::scope(|s| {
            let h = s.spawn(move || {
                let mut v = Vec::new();
                reader.read_to_end(&mut v).map(|_| v)
            });
            assert!(feeder.feed(Some(1)), "more to come after one block");
            assert!(!feeder.feed(None), "the whole stream was sent");
            drop(feeder);
            h.join().unwrap()
        });
        assert_eq!(got.unwrap(), data);
    }

    #[test]
    fn a_source_error_reaches_the_reader_as_an_error() {
        let (mut feeder, mut reader) = pipe(Box::new(FailsAfter { ok: BLOCK + 5 }));
        let got = std::thread::scope(|s| {
            let h = s.spawn(move || {
                let mut v = Vec::new();
                reader.read_to_end(&mut v)
            });
            assert!(!feeder.feed(None));
            drop(feeder);
            h.join().unwrap()
        });
        assert_eq!(got.unwrap_err().to_string(), "bad sector");
    }

    #[test]
    fn a_reader_that_stops_early_stops_the_feeder() {
        let data = vec![1u8; (IN_FLIGHT + 8) * BLOCK];
        let (mut feeder, reader) = pipe(Box::new(&data[..]));
        drop(reader);
        assert!(!feeder.feed(None), "a hung-up reader ends feeding");
    }
}
