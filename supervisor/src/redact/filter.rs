//! The prefilter: a Bloom filter over the first windows of every needle, so that the matcher
//! walks its trie only where a needle could start. It holds hash bits only, never needle bytes.

/// Width of the windows the prefilter hashes, in characters of the view; every needle is at
/// least this long.
pub const GRAM: usize = 4;

/// A blocked Bloom filter over the `GRAM`-character windows at offsets `0..stride` of every
/// needle: one hash picks a 64-bit word and three bits in it, so a lookup touches memory once.
pub struct GramFilter {
    words: Vec<u64>,
    shift: u32,
}

impl GramFilter {
    pub fn new<'a>(needles: impl ExactSizeIterator<Item = &'a [u8]>, stride: usize) -> GramFilter {
        // 32 bits per entry and three bits each keep false positives near 0.1%; each one
        // costs up to `stride` candidate starts.
        let size = (needles.len() * stride * 32)
            .next_power_of_two()
            .clamp(1 << 12, 1 << 26);
        let mut filter = GramFilter {
            words: vec![0; size / 64],
            shift: 64 - (size / 64).trailing_zeros(),
        };
        for needle in needles {
            for window in needle.windows(GRAM).take(stride) {
                let (word, bits) =
                    filter.slot(u32::from_le_bytes(window.try_into().expect("GRAM")));
                filter.words[word] |= bits;
            }
        }
        filter
    }

    /// The word (the top bits of a multiplicative hash) and the three bits (from its low
    /// bits).
    #[inline]
    fn slot(&self, gram: u32) -> (usize, u64) {
        let h = u64::from(gram).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        let bits = 1u64 << (h & 63) | 1u64 << ((h >> 6) & 63) | 1u64 << ((h >> 12) & 63);
        ((h >> self.shift) as usize, bits)
    }

    #[inline]
    pub fn may_contain(&self, gram: u32) -> bool {
        let (word, bits) = self.slot(gram);
        self.words[word] & bits == bits
    }
}

/// The first two bytes of every needle, as a bitmap: a position whose two bytes are not in it
/// begins no needle.
pub struct StartFilter {
    bits: Vec<u64>,
}

impl StartFilter {
    pub fn new<'a>(needles: impl Iterator<Item = &'a [u8]>) -> StartFilter {
        let mut bits = vec![0u64; 1 << 10];
        for n in needles {
            if let [a, b, ..] = n {
                let i = usize::from(*a) << 8 | usize::from(*b);
                bits[i / 64] |= 1 << (i % 64);
            }
        }
        StartFilter { bits }
    }

    #[inline]
    pub fn may_start(&self, a: u8, b: u8) -> bool {
        let i = usize::from(a) << 8 | usize::from(b);
        self.bits[i / 64] & (1 << (i % 64)) != 0
    }
}

/// Whether any of the four bytes of `w` is below 0x20 (every byte the view may leave out is).
#[inline]
pub fn has_control(w: u32) -> bool {
    w.wrapping_sub(0x2020_2020) & !w & 0x8080_8080 != 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_bytes_are_spotted_in_any_lane() {
        for lane in 0..4 {
            for b in [0u8, b'\n', b'\r', 0x1b, 0x1f] {
                let mut w = *b"abcd";
                w[lane] = b;
                assert!(has_control(u32::from_le_bytes(w)), "{b:#x} in lane {lane}");
            }
        }
        for w in [*b"abcd", [0x20; 4], [0xff; 4], [0x80, 0x20, 0x7f, 0x21]] {
            assert!(!has_control(u32::from_le_bytes(w)), "{w:?}");
        }
    }

    #[test]
    fn every_window_put_in_is_found() {
        let needles: [&[u8]; 2] = [b"0123456789abcdef", b"zyxwvutsrq"];
        let f = GramFilter::new(needles.iter().copied(), 6);
        for n in needles {
            for w in n.windows(GRAM).take(6) {
                assert!(f.may_contain(u32::from_le_bytes(w.try_into().unwrap())));
            }
        }
    }
}
