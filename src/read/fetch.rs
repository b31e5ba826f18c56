//! Fetch a run of consecutive blocks with one ranged request, and keep going until every block
//! of the run is delivered or has failed for good.
//!
//! - A body cut short (connection reset, timeout) is resumed from the first byte not yet
//!   received, with a fresh request.
//! - A refused link (403/410: expired or revoked) is re-minted once and the read resumes at the
//!   same offset; a second refusal in a row, with no byte received in between, is EIO.
//! - Throttling and server errors back off (`http::retry`), bounded; any progress resets the
//!   budget, so a slow CDN that keeps cutting connections still finishes.
//! - Anything that fails validation in `http::range` fails the blocks: those bytes never reach
//!   a reader.
//! - In its last round trip (the time its response took to start, at the rate its body
//!   arrives) a request hands the handle's permit to the next part (`ConnectionLimit::
//!   hand_over`), so that connection's idle round trip between two requests overlaps the
//!   transfer.
//! - Each request first asks the storage's traffic meter (`crate::budget`): a spent storage
//!   fails the blocks at once, and a request never asks for more than what is left of the
//!   budget, rounded up to a block; the rest of the run is asked for again (and refused).

use std::collections::VecDeque;
use std::sync::Arc;

use super::OpenFile;
use super::connections::ConnectionLimit;
use crate::cache::blocks::Filler;
use crate::error::Error;
use crate::http::range::get_range;
use crate::http::retry::Backoff;
use crate::stats::StorageStats;
use bytes::Bytes;
use std::time::{Duration, Instant};

/// How long a finished request keeps its connection permit (see `fetch_run`).
const POOL_RETURN: std::time::Duration = std::time::Duration::from_millis(2);
/// Transient failures in a row (no byte received in between) before the run gives up.
const MAX_ATTEMPTS: u32 = 6;

/// Deliver `fillers` (consecutive blocks of `file`, in order), each request holding one of the
/// handle's `requests` (earliest offset first) and one of the file's connections.
pub async fn fetch_run(file: Arc<OpenFile>, mut fillers: VecDeque<Filler>, requests: Arc<ConnectionLimit>) {
    let block_size = file.block_size;
    let Some(first) = fillers.front() else { return };
    // A filler may hold the first part of its block from an earlier attempt.
    let mut pos = first.key.index * block_size + first.received() as u64;
    let end = ((fillers.back().unwrap().key.index + 1) * block_size).min(file.size);
    let mut backoff = Backoff::new(MAX_ATTEMPTS);
    let mut reminted = false;

    while pos < end {
        let mut grant = match file.owner.traffic.admit(pos, end, block_size) {
            Ok(grant) => grant,
            Err(err) => return fail_all(&file, fillers, err),
        };
        let stop = grant.end();
        let link = match file.link().await {
            Ok(link) => link,
            Err(err) => return fail_all(&file, fillers, err),
        };
        let mut stream = Some(requests.acquire(pos).await);
        let mut overlap = None;
        let permit = file.connections.acquire(0).await;
        StorageStats::add(&file.stats.range_requests, 1);
        tracing::trace!(file = %file.entry.name, start = pos, end = stop, "ranged request");
        let asked = Instant::now();
        let err = match get_range(&file.http, &link, pos, stop - 1, file.size).await {
            Ok(mut body) => {
                let (first_byte, body_start, started) = (asked.elapsed(), Instant::now(), pos);
                tracing::trace!(file = %file.entry.name, start = pos, first_byte_ms = first_byte.as_millis() as u64, "response");
                loop {
                    match body.chunk().await {
                        Ok(Some(chunk)) => {
                            backoff.reset();
                            reminted = false;
                            pos += chunk.len() as u64;
                            StorageStats::add(&file.stats.bytes_fetched, chunk.len() as u64);
                            grant.received(chunk.len() as u64);
                            deliver(&file, &mut fillers, chunk);
                            // Only while the file has a connection free: several readers of
                            // one file that use all of its connections gain nothing by it, and
                            // their read-ahead past where they stop would be fetched sooner.
                            if stream.is_some()
                                && in_last_round_trip(first_byte, body_start.elapsed(), pos - started, stop - pos)
                                && file.connections.has_free()
                            {
                                match requests.hand_over(stream.take().unwrap()) {
                                    Ok(guard) => overlap = Some(guard),
                                    Err(permit) => stream = Some(permit),
                                }
                            }
                        }
                        Ok(None) => break None,
                        Err(err) => break Some(err),
                    }
                }
            }
            Err(err) => Some(err),
        };
        if err.is_none() {
            // The finished body's connection goes back to the pool from hyper's connection
            // task, a moment after the last byte; holding the permit that long lets the next
            // request reuse it instead of opening one more connection than the limit.
            tokio::time::sleep(POOL_RETURN).await;
        }
        drop((stream, overlap, grant));
        let Some(err) = err else {
            drop(permit);
            file.connections.succeeded();
            continue;
        };
        // A CDN that admits fewer connections than the driver said answers the extra ones
        // with 503 or 429: use one fewer from now on (see `connections`).
        if !matches!(err, Error::ServerError { status: 503 } | Error::RateLimited { .. }) {
            drop(permit);
        } else if file.connections.refused(permit) {
            tracing::info!(
                storage = %file.storage_path, file = %file.entry.name, limit = file.connections.limit(),
                "the CDN refused a connection: fewer parallel requests for this file"
            );
        }
        match err {
            Error::LinkRefused { .. } if !reminted => {
                tracing::debug!(file = %file.entry.name, %err, "link refused, minting a new one");
                file.refused(&link);
                reminted = true;
            }
            err => match backoff.delay_for(&err) {
                Some(delay) => {
                    tracing::debug!(file = %file.entry.name, offset = pos, %err, ?delay, "resuming download");
                    tokio::time::sleep(delay).await;
                }
                None => return fail_all(&file, fillers, err),
            },
        }
    }
}

/// Hand bytes to the block they belong to as they arrive (waiters are woken as soon as their
/// bytes are there) and publish each block when it is whole.
pub(super) fn deliver(file: &OpenFile, fillers: &mut VecDeque<Filler>, mut chunk: Bytes) {
    while !chunk.is_empty() {
        let Some(filler) = fillers.front() else { return };
        let block_len = file.block_len(filler.key.index) as usize;
        let want = block_len - filler.received();
        let take = want.min(chunk.len());
        filler.append(&chunk.split_to(take), block_len);
        if take == want {
            let filler = fillers.pop_front().unwrap();
            let index = filler.key.index;
            let bytes = filler.complete_received();
            if let Some(disk) = &file.disk {
                disk.store(&file.file_key, file.size, index, bytes);
            }
        }
    }
}

fn fail_all(file: &OpenFile, fillers: VecDeque<Filler>, err: Error) {
    if err.is_logged_once() {
        tracing::debug!(storage = %file.storage_path, file = %file.entry.name, error = %err, "read failed");
    } else {
        tracing::warn!(storage = %file.storage_path, file = %file.entry.name, error = %err, "read failed");
    }
    for filler in fillers {
        filler.fail(err.clone());
    }
}

/// Whether the `left` bytes still to come of a response will arrive within about one round
/// trip (`first_byte`, the time its headers took), at the rate `got` bytes took `elapsed`.
fn in_last_round_trip(first_byte: Duration, elapsed: Duration, got: u64, left: u64) -> bool {
    left as f64 * elapsed.as_secs_f64() <= got as f64 * first_byte.as_secs_f64()
}
