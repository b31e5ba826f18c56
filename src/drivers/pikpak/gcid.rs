//! GCID, the content hash PikPak indexes (pikpak-protocol.md §8.8): SHA-1 of each block, then
//! SHA-1 of the concatenated block digests, uppercase hex. The block size depends on the whole
//! size: 256 KiB, doubled while `size / block > 512` and `block < 2 MiB`.
//!
//! The core feeds bytes while a file is being written, before its size is known. So the hasher
//! keeps one running state per block size still possible and drops a candidate once the bytes
//! fed rule it out (a block size `b` is chosen only for sizes below `513 * b`); `finish` picks
//! the one the total selects. Cost: four SHA-1 passes over the first 128 MiB, three up to
//! 256 MiB, two up to 512 MiB, one above.

use sha1::{Digest, Sha1};

use crate::drivers::ContentHasher;

/// §8.8's first block size and the largest one.
const BASE_BLOCK: u64 = 0x40000;
const BLOCK_DOUBLINGS: u32 = 3;
/// §8.8: a block size is kept while `size / block <= 512`.
const MAX_BLOCKS: u64 = 0x200;

/// The block size §8.8 picks for `size` bytes, with `base` as the first block size (tests use
/// a small one so that every block size is reached with little data).
fn block_size(size: u64, base: u64) -> u64 {
    let mut block = base;
    while size / block > MAX_BLOCKS && block < base << BLOCK_DOUBLINGS {
        block *= 2;
    }
    block
}

/// The GCID of `data`, all at once.
pub fn gcid(data: &[u8]) -> String {
    gcid_with_base(data, BASE_BLOCK)
}

fn gcid_with_base(data: &[u8], base: u64) -> String {
    let block = block_size(data.len() as u64, base) as usize;
    let mut outer = Sha1::new();
    for chunk in data.chunks(block) {
        outer.update(Sha1::digest(chunk));
    }
    hex_upper(&outer.finalize())
}

fn hex_upper(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02X}")).collect()
}

/// The running state for one block size.
struct Candidate {
    block: u64,
    /// Bytes of the current (unfinished) block.
    filled: u64,
    inner: Sha1,
    outer: Sha1,
}

impl Candidate {
    fn update(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            let take = ((self.block - self.filled) as usize).min(bytes.len());
            self.inner.update(&bytes[..take]);
            self.filled += take as u64;
            bytes = &bytes[take..];
            if self.filled == self.block {
                self.outer.update(self.inner.finalize_reset());
                self.filled = 0;
            }
        }
    }

    fn finish(mut self) -> String {
        if self.filled > 0 {
            self.outer.update(self.inner.finalize());
        }
        hex_upper(&self.outer.finalize())
    }
}

/// An incremental GCID (see the module docs).
pub struct GcidHasher {
    base: u64,
    fed: u64,
    /// Smallest block size first; the last one (the largest) is never dropped.
    candidates: Vec<Candidate>,
}

impl GcidHasher {
    pub fn new() -> Self {
        Self::with_base(BASE_BLOCK)
    }

    fn with_base(base: u64) -> Self {
        let candidates = (0..=BLOCK_DOUBLINGS)
            .map(|i| Candidate { block: base << i, filled: 0, inner: Sha1::new(), outer: Sha1::new() })
            .collect();
        GcidHasher { base, fed: 0, candidates }
    }
}

impl Default for GcidHasher {
    fn default() -> Self {
        Self::new()
    }
}

impl ContentHasher for GcidHasher {
    fn update(&mut self, bytes: &[u8]) {
        self.fed += bytes.len() as u64;
        // A block size smaller than the one the bytes so far select can no longer be chosen.
        let smallest = block_size(self.fed, self.base);
        self.candidates.retain(|c| c.block >= smallest);
        for c in &mut self.candidates {
            c.update(bytes);
        }
    }

    fn finish(self: Box<Self>) -> String {
        let block = block_size(self.fed, self.base);
        let chosen = self.candidates.into_iter().find(|c| c.block == block).expect("the chosen block size is kept");
        chosen.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn pattern(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i % 251) as u8).collect()
    }

    fn incremental(data: &[u8], base: u64, cuts: &[usize]) -> String {
        let mut h: Box<dyn ContentHasher> = Box::new(GcidHasher::with_base(base));
        let mut cuts: Vec<usize> = cuts.iter().map(|c| c % (data.len() + 1)).collect();
        cuts.sort();
        let mut at = 0;
        for cut in cuts.into_iter().chain([data.len()]) {
            h.update(&data[at..cut]);
            at = cut;
        }
        h.finish()
    }

    #[test]
    fn fixed_values() {
        // python3: hashlib.sha1(b"").hexdigest().upper(), as §8.8 step 4 says.
        assert_eq!(gcid(b""), "DA39A3EE5E6B4B0D3255BFEF95601890AFD80709");
        assert_eq!(incremental(b"", BASE_BLOCK, &[]), "DA39A3EE5E6B4B0D3255BFEF95601890AFD80709");
        // Computed with python3 (block loop of §8.8 over hashlib.sha1):
        //   def gcid(d):
        //     b = 0x40000
        //     while len(d)//b > 0x200 and b < 0x200000: b *= 2
        //     h = hashlib.sha1()
        //     for i in range(0, len(d), b): h.update(hashlib.sha1(d[i:i+b]).digest())
        //     return h.hexdigest().upper()
        //   gcid(b"hello"); gcid(bytes(i % 251 for i in range(1_000_000)))
        assert_eq!(gcid(b"hello"), "6B4F89A54E2D27ECD7E8DA05B4AB8FD9D1D8B119");
        let data = pattern(1_000_000);
        assert_eq!(gcid(&data), "37E7E2D62F86EA0BE29A12DC14932FD86F3F0C71");
        assert_eq!(incremental(&data, BASE_BLOCK, &[1, 262_143, 262_144, 700_000]), gcid(&data));
    }

    #[test]
    fn block_sizes_follow_the_reference() {
        const MIB: u64 = 1 << 20;
        assert_eq!(block_size(0, BASE_BLOCK), 256 << 10);
        assert_eq!(block_size(128 * MIB, BASE_BLOCK), 256 << 10);
        // Integer division: 256 KiB holds until 513 blocks.
        assert_eq!(block_size(513 * (256 << 10) - 1, BASE_BLOCK), 256 << 10);
        assert_eq!(block_size(513 * (256 << 10), BASE_BLOCK), 512 << 10);
        assert_eq!(block_size(256 * MIB, BASE_BLOCK), 512 << 10);
        assert_eq!(block_size(513 * (512 << 10), BASE_BLOCK), MIB);
        assert_eq!(block_size(512 * MIB, BASE_BLOCK), MIB);
        assert_eq!(block_size(513 * MIB, BASE_BLOCK), 2 * MIB);
        assert_eq!(block_size(100 << 30, BASE_BLOCK), 2 * MIB);
    }

    /// With a 4-byte first block, every block size is reached below 16.5 KB.
    const TINY: u64 = 4;

    proptest! {
        #[test]
        fn incremental_equals_whole_buffer(len in 0usize..20_000, cuts in proptest::collection::vec(any::<usize>(), 0..8)) {
            let data: Vec<u8> = (0..len).map(|i| (i * 7 + i / 13) as u8).collect();
            prop_assert_eq!(incremental(&data, TINY, &cuts), gcid_with_base(&data, TINY));
        }
    }

    proptest! {
        // Megabytes of SHA-1 per case in a debug build: a few cases.
        #![proptest_config(ProptestConfig::with_cases(12))]

        #[test]
        fn incremental_equals_whole_buffer_at_real_sizes(len in 0usize..1_200_000, cuts in proptest::collection::vec(any::<usize>(), 0..4)) {
            let data = pattern(len);
            prop_assert_eq!(incremental(&data, BASE_BLOCK, &cuts), gcid(&data));
        }
    }

    #[test]
    fn candidates_are_dropped_as_bytes_arrive() {
        let mut h = GcidHasher::with_base(TINY);
        h.update(&pattern(513 * 4 - 1));
        assert_eq!(h.candidates.len(), 4);
        h.update(&[0]);
        assert_eq!(h.candidates.len(), 3);
        h.update(&pattern(513 * 32));
        assert_eq!(h.candidates.len(), 1);
        assert_eq!(h.candidates[0].block, 32);
    }
}
