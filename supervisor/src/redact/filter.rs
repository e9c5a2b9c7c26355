//! The prefilter: a Bloom filter over the first windows of every needle, so that the matcher
//! walks its trie only where a needle could start. It holds hash bits only, never needle bytes.

/// Width of the windows the prefilter hashes, in characters of the view; every needle is at
/// least this long.
pub const GRAM: usize = 4;

/// A Bloom filter (two hashes) over the `GRAM`-character windows at offsets `0..stride` of
/// every needle.
pub struct GramFilter {
    bits: Vec<u64>,
    shift: u32,
}

impl GramFilter {
    pub fn new<'a>(needles: impl ExactSizeIterator<Item = &'a [u8]>, stride: usize) -> GramFilter {
        // 32 bits per entry and two hashes keep false positives under 0.5%; each one costs
        // up to `stride` trie walks.
        let size = (needles.len() * stride * 32)
            .next_power_of_two()
            .clamp(1 << 12, 1 << 26);
        let mut filter = GramFilter {
            bits: vec![0; size / 64],
            shift: 64 - size.trailing_zeros(),
        };
        for needle in needles {
            for window in needle.windows(GRAM).take(stride) {
                let (a, b) = filter.slots(u32::from_le_bytes(window.try_into().expect("GRAM")));
                filter.bits[a / 64] |= 1 << (a % 64);
                filter.bits[b / 64] |= 1 << (b % 64);
            }
        }
        filter
    }

    /// Two slots: the top bits of two multiplicative hashes.
    #[inline]
    fn slots(&self, gram: u32) -> (usize, usize) {
        let gram = u64::from(gram);
        let a = gram.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> self.shift;
        let b = gram.wrapping_mul(0xC2B2_AE3D_27D4_EB4F) >> self.shift;
        (a as usize, b as usize)
    }

    #[inline]
    pub fn may_contain(&self, gram: u32) -> bool {
        let (a, b) = self.slots(gram);
        self.bits[a / 64] & (1 << (a % 64)) != 0 && self.bits[b / 64] & (1 << (b % 64)) != 0
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
