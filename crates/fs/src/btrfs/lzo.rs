//! LZO1X decompression with every index checked.
//!
//! Why not a crate: `lzokay-native` 0.1 computes match positions with
//! unchecked subtraction and panics on malformed input (found by the
//! `fs_btrfs` fuzz target); the GPL ports cannot be linked here. The
//! algorithm follows the structure of Linux's `lzo1x_decompress_safe.c`
//! (without the LZO-RLE extension, which Btrfs does not write).

/// Why a stream could not be decompressed.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum LzoError {
    /// The input ended inside an instruction.
    InputOverrun,
    /// A match refers to bytes before the start of the output.
    LookBehind,
    /// The output would exceed the caller's bound.
    OutputOverrun,
    /// The stream did not end with the end-of-stream marker correctly.
    BadEnd,
}

struct Input<'a> {
    data: &'a [u8],
    pos: usize,
}

impl Input<'_> {
    fn byte(&mut self) -> Result<usize, LzoError> {
        let b = *self.data.get(self.pos).ok_or(LzoError::InputOverrun)?;
        self.pos += 1;
        Ok(usize::from(b))
    }
    fn le16(&mut self) -> Result<usize, LzoError> {
        Ok(self.byte()? | self.byte()? << 8)
    }
    /// A run of zero bytes each worth 255, then a final byte.
    fn extended(&mut self, base: usize) -> Result<usize, LzoError> {
        let mut n = base;
        loop {
            let b = self.byte()?;
            if b != 0 {
                return n.checked_add(b).ok_or(LzoError::OutputOverrun);
            }
            n = n.checked_add(255).ok_or(LzoError::OutputOverrun)?;
        }
    }
    fn literals(&mut self, n: usize, out: &mut Vec<u8>, max: usize) -> Result<(), LzoError> {
        let end = self.pos.checked_add(n).ok_or(LzoError::InputOverrun)?;
        let src = self.data.get(self.pos..end).ok_or(LzoError::InputOverrun)?;
        if out.len() + n > max {
            return Err(LzoError::OutputOverrun);
        }
        out.extend_from_slice(src);
        self.pos = end;
        Ok(())
    }
}

/// Copies `len` bytes from `distance` bytes back (overlap allowed).
fn copy_match(out: &mut Vec<u8>, distance: usize, len: usize, max: usize) -> Result<(), LzoError> {
    let start = out
        .len()
        .checked_sub(distance)
        .ok_or(LzoError::LookBehind)?;
    if distance == 0 {
        return Err(LzoError::LookBehind);
    }
    if out.len() + len > max {
        return Err(LzoError::OutputOverrun);
    }
    for i in 0..len {
        out.push(out[start + i]);
    }
    Ok(())
}

const M2_MAX_OFFSET: usize = 0x0800;

/// Decompresses one LZO1X stream, producing at most `max` bytes.
pub(crate) fn decompress(data: &[u8], max: usize) -> Result<Vec<u8>, LzoError> {
    let mut ip = Input { data, pos: 0 };
    let mut out = Vec::with_capacity(max.min(1 << 20));
    let mut state = 0usize;
    let mut first = true;
    loop {
        let mut t = ip.byte()?;
        let (distance, len, next);
        if first && t > 17 {
            first = false;
            let n = t - 17;
            ip.literals(n, &mut out, max)?;
            state = if n < 4 { n } else { 4 };
            continue;
        }
        first = false;
        if t < 16 {
            if state == 0 {
                if t == 0 {
                    t = ip.extended(15)?;
                }
                ip.literals(t + 3, &mut out, max)?;
                state = 4;
                continue;
            } else if state != 4 {
                next = t & 3;
                distance = 1 + (t >> 2) + (ip.byte()? << 2);
                len = 2;
            } else {
                next = t & 3;
                distance = 1 + M2_MAX_OFFSET + (t >> 2) + (ip.byte()? << 2);
                len = 3;
            }
        } else if t >= 64 {
            next = t & 3;
            distance = 1 + ((t >> 2) & 7) + (ip.byte()? << 3);
            len = (t >> 5) + 1;
        } else if t >= 32 {
            let mut n = t & 31;
            if n == 0 {
                n = ip.extended(31)?;
            }
            let d = ip.le16()?;
            next = d & 3;
            distance = 1 + (d >> 2);
            len = n + 2;
        } else {
            let high = (t & 8) << 11;
            let mut n = t & 7;
            if n == 0 {
                n = ip.extended(7)?;
            }
            let d = ip.le16()?;
            next = d & 3;
            let far = high + (d >> 2);
            if far == 0 {
                // End of stream: the marker is a 3-byte M4 with distance 0.
                return if n + 2 == 3 {
                    Ok(out)
                } else {
                    Err(LzoError::BadEnd)
                };
            }
            distance = far + 0x4000;
            len = n + 2;
        }
        copy_match(&mut out, distance, len, max)?;
        state = next;
        ip.literals(next, &mut out, max)?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_an_independent_compressor() {
        let mut samples: Vec<Vec<u8>> = vec![
            b"hello hello hello hello, lzo!".to_vec(),
            (0..20000u32)
                .flat_map(|i| (i % 251).to_le_bytes())
                .collect(),
            b"line 00000001: the quick brown fox\n".repeat(300),
            vec![0u8; 5000],
            (0..4096u32)
                .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
                .collect(),
        ];
        samples.push(samples.concat());
        for s in samples {
            let packed = lzokay_native::compress(&s).unwrap();
            assert_eq!(decompress(&packed, s.len()).unwrap(), s);
            // Truncated streams and tight bounds are errors, never panics.
            for cut in [1, packed.len() / 2, packed.len() - 1] {
                assert!(decompress(&packed[..cut], s.len()).is_err());
            }
            if !s.is_empty() {
                assert_eq!(
                    decompress(&packed, s.len() - 1),
                    Err(LzoError::OutputOverrun)
                );
            }
        }
    }

    #[test]
    fn hostile_streams_error() {
        assert_eq!(
            decompress(&[0x20, 0x00, 0xff, 0xff], 100),
            Err(LzoError::InputOverrun)
        );
        // One literal, then an M2 match reaching 2041 bytes back.
        assert_eq!(
            decompress(&[18, b'a', 0x40, 0xff], 100),
            Err(LzoError::LookBehind)
        );
        assert!(decompress(&[], 10).is_err());
    }
}
