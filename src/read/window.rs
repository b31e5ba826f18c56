//! The read-ahead policy of one open file: pure arithmetic, no IO, property-tested.
//!
//! A read close to where the last one ended (up to `BACK` behind or `FORWARD` ahead, because
//! the kernel's asynchronous readahead dispatches neighbouring requests out of order) counts
//! as sequential. A sequential run earns read-ahead only once it is `stream_after` bytes long:
//! a media scanner reads a few hundred KiB of a header (ffprobe reads about 420 KiB of an
//! MKV's head, 100 KiB of an MP4's head and tail), and anything fetched beyond that is
//! wasted; the kernel's own readahead (one 128 KiB request ahead) carries a stream until then.
//! Only a run that starts in the file's first `stream_after` bytes (a scanner comes back to
//! the head after a look at the tail) needs the whole of it: elsewhere a run is most often a
//! player resuming after a seek, and half of it is proof enough (more than one random read,
//! which the kernel may split into several requests, of up to 256 KiB).
//! From there, sequential reading keeps data requested ahead of the reader: whenever the
//! requested frontier falls more than half a window (or a [`Window::part`], if less) behind
//! `end + window`, the gap is asked for as one range. The part matters for large windows:
//! parts fetched in parallel arrive together, so a reader advances by whole batches, and
//! waiting for half a window to drain would leave connections idle between batches; asking
//! again each part keeps a window's worth of requests asked for. The window doubles (up to `max`) each time the reader has consumed half a
//! window since it last grew: growth follows what is read, not how often the kernel asks. Any
//! other read is a seek: the window drops back to `initial` and nothing is fetched beyond the
//! read itself, since a seek is as often the last read of that region (a scanner's look at an
//! index, a random 4 KiB read) as the start of a stream.

use std::ops::Range;

/// How far behind the expected offset a read may start and still count as sequential.
pub const BACK: u64 = 256 * 1024;
/// How far ahead of the expected offset a read may start and still count as sequential.
pub const FORWARD: u64 = 1024 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowConfig {
    pub initial: u64,
    pub max: u64,
    /// Bytes read in sequence before read-ahead starts.
    pub stream_after: u64,
    /// The largest read-ahead request (see [`Window::part`]).
    pub step: u64,
}

/// A run this long, not yet a stream, gets `PROBE_AHEAD` read ahead of it (an MP4 probe's
/// look at the head, 64 KiB from byte 48, stays under it and fetches only what it reads).
const PROBE_RUN: u64 = 128 * 1024;
const PROBE_AHEAD: u64 = 128 * 1024;

/// The smallest read-ahead request: below this the round trip dominates. Several readers of
/// one file share the memory budget (a 16 MiB window each for four) and the file's
/// connections, so their requests in their last round trip rarely find a connection to hand
/// over to: a 1 MiB part (52 ms at 20 MB/s, under the 60 ms round trip) cost four readers of
/// one file 128 against 167 MB/s on the benchmark's path.
pub const MIN_PART: u64 = 2 * 1024 * 1024;

/// Parts a window is split into (see [`Window::part`]).
const PARTS_PER_WINDOW: u64 = 16;

/// A run this much short of its proof counts as a stream: the kernel hands a 1 MiB read to
/// FUSE as 1 MiB - 16 bytes and then 16 bytes, and a reader's first 1 MiB read from a file's
/// start (a copy, a player) must start its read-ahead at once, not after that read's own
/// megabyte has crawled through TCP slow start on one connection (0.56 s on the benchmark's
/// 60 ms path).
const SHORTFALL: u64 = 64 * 1024;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Window {
    /// Where the next sequential read is expected.
    next: u64,
    /// Bytes to keep requested ahead of the reader.
    size: u64,
    /// Everything before this has been requested.
    frontier: u64,
    /// Where the reader was when the window last grew (or reset).
    grown_at: u64,
    /// Where the current sequential run started.
    run_start: u64,
}

impl Window {
    pub fn new(config: WindowConfig) -> Self {
        Window { next: 0, size: config.initial, frontier: 0, grown_at: 0, run_start: 0 }
    }

    pub fn size(&self) -> u64 {
        self.size
    }

    pub fn frontier(&self) -> u64 {
        self.frontier
    }

    /// Whether the current sequential run is long enough to be a stream.
    pub fn is_stream(&self, config: WindowConfig) -> bool {
        self.next.saturating_sub(self.run_start) >= self.proof(config)
    }

    /// How long the current run must be to count as a stream (see the module docs).
    fn proof(&self, config: WindowConfig) -> u64 {
        let proof = if self.run_start < config.stream_after { config.stream_after } else { config.stream_after / 2 };
        proof.saturating_sub(SHORTFALL)
    }

    /// Only `..end` of what `on_read` returned will be fetched: the rest is asked for again.
    pub fn limit_frontier(&mut self, end: u64) {
        self.frontier = self.frontier.min(end).max(self.next);
    }

    /// How large each read-ahead request should be: a sixteenth of the window, between
    /// `MIN_PART` and `step`. Every request waits a round trip for its first byte, which the
    /// next request of a connection can hide only if it is already waiting when one nears its
    /// end (`connections::ConnectionLimit::hand_over`): so the window holds twice as many parts
    /// as a reader has connections, half of them in flight and half asked for and waiting.
    pub fn part(&self, config: WindowConfig) -> u64 {
        (self.size / PARTS_PER_WINDOW).clamp(MIN_PART, config.step.max(MIN_PART))
    }

    /// Record a read of `len` bytes at `offset` and return what to fetch ahead of it, if
    /// anything. The range never reaches past `file_size` and is never empty.
    pub fn on_read(&mut self, config: WindowConfig, offset: u64, len: u64, file_size: u64) -> Option<Range<u64>> {
        let end = offset.saturating_add(len).min(file_size);
        let sequential = offset.saturating_add(BACK) >= self.next && offset <= self.next.saturating_add(FORWARD);
        if !sequential {
            *self = Window { next: end, size: config.initial, frontier: end, grown_at: end, run_start: offset };
            return None;
        }
        self.next = self.next.max(end);
        // The cap may have dropped since the window grew (other files began streaming).
        self.size = self.size.min(config.max).max(config.initial.min(config.max));
        if !self.is_stream(config) {
            self.grown_at = self.next;
            // Not a stream yet, but a run that goes on may be a scanner reading a header in small
            // reads, each waiting a round trip: once the run passes `PROBE_RUN`, keep up to
            // `PROBE_AHEAD` asked for ahead of it, so several of its next reads are on the wire
            // at once. What is fetched past the scanner's last read is at most `PROBE_AHEAD`.
            let run = self.next - self.run_start.min(self.next);
            if run >= PROBE_RUN && run > end - offset.min(end) {
                let target = self
                    .next
                    .saturating_add(PROBE_AHEAD.min(run))
                    .min(self.run_start.saturating_add(self.proof(config)))
                    .min(file_size);
                let start = self.frontier.max(self.next);
                if target > start {
                    self.frontier = target;
                    return Some(start..target);
                }
            }
            self.frontier = self.frontier.max(self.next);
            return None;
        }
        let target = self.next.saturating_add(self.size).min(file_size);
        // Everything before `next` has been requested by the reads themselves.
        let start = self.frontier.max(self.next);
        self.frontier = start;
        if target <= start {
            return None;
        }
        if target - start >= (self.size / 2).min(self.part(config)) || target == file_size {
            self.frontier = target;
            if self.next >= self.grown_at.saturating_add(self.size / 2) {
                self.size = self.size.saturating_mul(2).min(config.max);
                self.grown_at = self.next;
            }
            return Some(start..target);
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const MIB: u64 = 1024 * 1024;
    const CFG: WindowConfig = WindowConfig { initial: MIB, max: 16 * MIB, stream_after: MIB, step: 4 * MIB };

    #[test]
    fn sequential_reading_grows_the_window_and_keeps_ahead() {
        let mut w = Window::new(CFG);
        let size = 100 * MIB;
        let mut requested = Vec::new();
        let mut offset = 0;
        while offset < size {
            if let Some(r) = w.on_read(CFG, offset, 128 * 1024, size) {
                requested.push(r);
            }
            offset += 128 * 1024;
            assert!(w.frontier() >= offset.min(size));
        }
        assert_eq!(w.size(), CFG.max);
        // Increasing, never twice, and covering the file to its end: a gap only where the read
        // that turned the run into a stream asked for those bytes itself.
        assert_eq!(requested[0].start, 256 * 1024, "nothing ahead of the first read; then as much again as was read");
        for pair in requested.windows(2) {
            assert!(pair[0].end <= pair[1].start && pair[1].start <= pair[0].end + 128 * 1024, "{pair:?}");
        }
        assert_eq!(requested.last().unwrap().end, size);
    }

    #[test]
    fn reading_a_header_does_not_grow_the_window() {
        let mut w = Window::new(CFG);
        let mut requested = 0;
        for i in 0..3 {
            if let Some(r) = w.on_read(CFG, i * 128 * 1024, 128 * 1024, 1 << 30) {
                requested = r.end;
            }
        }
        assert_eq!(w.size(), CFG.initial, "384 KiB read: less than a window consumed");
        assert_eq!(requested, 384 * 1024 + PROBE_AHEAD, "a header read keeps PROBE_AHEAD asked for, no more");
        assert!(!w.is_stream(CFG));
    }

    #[test]
    fn a_seek_resets_the_window() {
        let mut w = Window::new(CFG);
        for i in 0..40 {
            w.on_read(CFG, i * 128 * 1024, 128 * 1024, 1 << 40);
        }
        assert!(w.size() > CFG.initial);
        assert_eq!(w.on_read(CFG, 500 * MIB, 4096, 1 << 40), None, "no read-ahead on a seek");
        assert_eq!(w.size(), CFG.initial);
        // Reading on from there keeps at most PROBE_AHEAD asked for, within the proof, and
        // becomes a stream after half of `stream_after`.
        assert_eq!(w.on_read(CFG, 500 * MIB + 4096, 64 * 1024, 1 << 40), None, "a short run: nothing ahead");
        let mut offset = 500 * MIB + 4096 + 64 * 1024;
        while !w.is_stream(CFG) {
            if let Some(r) = w.on_read(CFG, offset, 64 * 1024, 1 << 40) {
                let limit = (offset + 64 * 1024 + PROBE_AHEAD).min(500 * MIB + CFG.stream_after / 2);
                assert!(w.is_stream(CFG) || r.end <= limit, "{r:?}");
            }
            offset += 64 * 1024;
        }
        assert_eq!(offset - 500 * MIB, CFG.stream_after / 2 - SHORTFALL + 4096, "a stream after half of stream_after");
    }

    #[test]
    fn small_reordering_is_still_sequential() {
        let mut w = Window::new(CFG);
        w.on_read(CFG, 0, 128 * 1024, 1 << 30);
        w.on_read(CFG, 256 * 1024, 128 * 1024, 1 << 30);
        let before = w.size();
        w.on_read(CFG, 128 * 1024, 128 * 1024, 1 << 30);
        assert!(w.size() >= before);
    }

    proptest! {
        #[test]
        fn ranges_stay_in_the_file_and_the_window_in_bounds(
            file_size in 0u64..(1 << 34),
            reads in prop::collection::vec((0u64..(1 << 34), 1u64..(4 * MIB)), 1..200),
        ) {
            let mut w = Window::new(CFG);
            for (offset, len) in reads {
                let offset = offset % (file_size + 1);
                if let Some(r) = w.on_read(CFG, offset, len, file_size) {
                    prop_assert!(r.start < r.end);
                    prop_assert!(r.end <= file_size);
                }
                prop_assert!(w.size() >= CFG.initial && w.size() <= CFG.max);
            }
        }

        #[test]
        fn sequential_reads_never_request_a_byte_twice(
            file_size in 1u64..(1 << 30),
            lens in prop::collection::vec(1u64..(2 * MIB), 1..300),
        ) {
            let mut w = Window::new(CFG);
            let mut offset = 0;
            let mut last_end = 0;
            for len in lens {
                if offset >= file_size { break; }
                if let Some(r) = w.on_read(CFG, offset, len, file_size) {
                    prop_assert!(r.start >= last_end);
                    last_end = r.end;
                }
                offset += len;
                prop_assert!(w.frontier() >= offset.min(file_size) || w.frontier() == file_size);
            }
        }
    }
}
