//! A cold read that starts deep inside its block: fetch the block as two requests, the part
//! from the read's offset first, so that the reader's bytes come in the response's first
//! packets.
//!
//! A response starts in TCP slow start whenever its connection is new (the first read after
//! mounting) or has idled: the server sends about 14 KB in the first round trip, twice that
//! in the next, and so on. A 1-byte read 55 KB into a 64 KiB block therefore waited two round
//! trips after the first byte of its block's response (262 ms on the benchmark's 60 ms path,
//! against 125 ms for curl's 1-byte GET). Asking for `offset..block end` and
//! `block start..offset` at once (two connections) puts the reader's bytes first; the block is
//! cached whole once both arrive. No byte is fetched twice. Any failure hands the block to
//! [`fetch::fetch_run`], which retries it whole as usual; the reader then waits for that.

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use tokio::sync::oneshot;

use super::OpenFile;
use super::connections::ConnectionLimit;
use super::fetch;
use crate::cache::blocks::Filler;
use crate::error::Result;
use crate::http::range::get_range;
use crate::stats::StorageStats;

/// A read this far into its block or further is split: the first ~14 KB of a response come in
/// its first round trip even on a new connection, so nearer reads gain nothing.
pub const SPLIT_AFTER: u64 = 16 * 1024;

/// Fetch `filler`'s block as `..split` and `split..`, sending the first `want` bytes from
/// `split` to `early` as soon as they are there.
pub async fn fetch_split(
    file: Arc<OpenFile>,
    filler: Filler,
    split: u64,
    want: usize,
    early: oneshot::Sender<Bytes>,
    requests: Arc<ConnectionLimit>,
) {
    let start = filler.key.index * file.block_size;
    let end = start + file.block_len(filler.key.index);
    // The tail goes first and the head once the tail's response has started (or failed), so
    // that a warm pooled connection, if there is one, carries the reader's bytes.
    let (answered, started) = oneshot::channel();
    let (head, tail) = tokio::join!(
        async {
            let _ = started.await;
            range_bytes(&file, start, start + split, None, None, &requests).await
        },
        range_bytes(&file, start + split, end, Some((want, early)), Some(answered), &requests),
    );
    match (head, tail) {
        (Ok(head), Ok(tail)) => {
            let mut fillers = std::collections::VecDeque::from([filler]);
            fetch::deliver(&file, &mut fillers, head);
            fetch::deliver(&file, &mut fillers, tail);
        }
        (Err(err), _) | (_, Err(err)) => {
            tracing::debug!(file = %file.entry.name, offset = start, %err, "split read failed, fetching the block whole");
            fetch::fetch_run(file, [filler].into(), requests).await;
        }
    }
}

/// Bytes `start..end` of the file by one ranged request (no retry: the caller falls back to
/// `fetch_run`), handing the first `want` of them to `early` once they are there; `answered`
/// is dropped once the response has started (or the request failed).
async fn range_bytes(
    file: &OpenFile,
    start: u64,
    end: u64,
    mut early: Option<(usize, oneshot::Sender<Bytes>)>,
    answered: Option<oneshot::Sender<()>>,
    requests: &Arc<ConnectionLimit>,
) -> Result<Bytes> {
    // Within one block: a grant always covers the rest of its block.
    let mut grant = file.owner.traffic.admit(start, end, file.block_size)?;
    let link = file.link().await?;
    let _stream = requests.acquire(start).await;
    let _permit = file.connections.acquire(0).await;
    StorageStats::add(&file.stats.range_requests, 1);
    tracing::trace!(file = %file.entry.name, start, end, "ranged request (split)");
    let mut body = get_range(&file.http, &link, start, end - 1, file.size).await.inspect_err(|err| {
        if matches!(err, crate::error::Error::LinkRefused { .. }) {
            file.refused(&link);
        }
    })?;
    drop(answered);
    let mut bytes = BytesMut::with_capacity((end - start) as usize);
    while let Some(chunk) = body.chunk().await? {
        StorageStats::add(&file.stats.bytes_fetched, chunk.len() as u64);
        grant.received(chunk.len() as u64);
        bytes.extend_from_slice(&chunk);
        if early.as_ref().is_some_and(|(want, _)| bytes.len() >= *want) {
            let (want, tx) = early.take().unwrap();
            let _ = tx.send(Bytes::copy_from_slice(&bytes[..want]));
        }
    }
    Ok(bytes.freeze())
}
