//! Folders as the kernel pages through them: `opendir` freezes a folder's listing into a
//! [`DirSnapshot`] (so offsets stay stable while the kernel reads on; the open files keep it
//! under a handle), and `readdir` hands its entries out a batch at a time.

use std::sync::Arc;

use futures_util::future::join_all;

use super::inode::{Kind, RemoteEntry};
use super::{Namespace, VIRTUAL_TTL};
use crate::cache::meta::Listing;
use crate::drivers::{Entry, EntryRef};
use crate::error::{Error, Result};
use crate::fs::{Attr, DirItem};

/// Entries `readdir` prepares at a time: about what one reply of the kernel's holds (4 KiB of
/// readdirplus entries is 20-25), with room for bigger buffers.
const READDIR_BATCH: usize = 64;
/// Folders whose last listing digest is remembered; past this the memory is simply cleared
/// (the kernel then re-reads each folder once).
const MAX_DIR_DIGESTS: usize = 100_000;

/// A folder as `opendir` saw it: `.`, `..` and a virtual folder's children by name, then a
/// remote folder's listing, shared with the cache rather than copied (a folder of a million
/// entries would otherwise cost a copy of every entry per open handle).
#[derive(Debug)]
pub struct DirSnapshot {
    pub fixed: Vec<(String, u64)>,
    pub remote: Option<Arc<Listing>>,
}

/// One name of a [`DirSnapshot`].
pub enum DirSlot<'a> {
    /// `.`, `..` or a virtual child: its inode.
    Fixed(&'a str, u64),
    /// A remote entry, and the name it is shown under.
    Remote(&'a str, EntryRef<'a>),
}

impl DirSnapshot {
    pub fn len(&self) -> usize {
        self.fixed.len() + self.remote.as_ref().map_or(0, |l| l.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn get(&self, i: usize) -> Option<DirSlot<'_>> {
        match self.fixed.get(i) {
            Some((name, ino)) => Some(DirSlot::Fixed(name, *ino)),
            None => {
                let listing = self.remote.as_ref()?;
                let i = i - self.fixed.len();
                listing.get(i).map(|e| DirSlot::Remote(listing.shown(i), e))
            }
        }
    }

    /// What the kernel keeps of a folder when it caches the folder's listing (names, inodes,
    /// types): if this is unchanged since the last `opendir`, its cached copy may be used.
    pub fn digest(&self) -> u64 {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        for (name, ino) in &self.fixed {
            (name, ino).hash(&mut h);
        }
        for (name, e) in self.remote.iter().flat_map(|l| l.iter_shown()) {
            (name, &e.id, e.is_dir).hash(&mut h);
        }
        h.finish()
    }
}

impl Namespace {
    /// A snapshot of the folder `ino`'s listing, and whether the listing is the one the kernel
    /// saw at the previous `opendir` (then its cached copy is still right).
    pub async fn opendir(&self, ino: u64) -> Result<(DirSnapshot, bool)> {
        let node = self.inodes.lock().unwrap().get(ino)?.clone();
        let mut fixed = vec![(".".to_string(), ino), ("..".to_string(), node.parent)];
        let remote = match node.kind {
            Kind::Virtual { children } => {
                fixed.extend(children);
                None
            }
            Kind::Remote { entry, .. } if !entry.view().is_dir => return Err(Error::NotDir),
            Kind::Stats => return Err(Error::NotDir),
            Kind::Remote { storage, entry } => Some(self.list(storage, &entry.view().to_entry()).await?.0),
        };
        let snapshot = DirSnapshot { fixed, remote };
        let digest = snapshot.digest();
        let unchanged = {
            let mut seen = self.dir_digests.lock().unwrap();
            if seen.len() >= MAX_DIR_DIGESTS {
                seen.clear();
            }
            seen.insert(ino, digest) == Some(digest)
        };
        Ok((snapshot, unchanged))
    }

    /// Hand the entries of `snapshot` (the folder `ino`) from `offset` on to `fill` until it
    /// reports the reply buffer full. With `plus` (readdirplus) each accepted entry counts as
    /// a kernel lookup.
    ///
    /// Entries go out [`READDIR_BATCH`] at a time (unknown sizes in a batch are learned
    /// concurrently): a reply holds a few dozen entries, so each call costs what it sends, not
    /// what is left of the folder.
    pub async fn readdir(
        &self,
        ino: u64,
        snapshot: &DirSnapshot,
        offset: u64,
        plus: bool,
        mut fill: impl FnMut(DirItem) -> bool,
    ) -> Result<()> {
        let storage = match &self.inodes.lock().unwrap().get(ino)?.kind {
            Kind::Remote { storage, .. } => Some(*storage),
            Kind::Virtual { .. } | Kind::Stats => None,
        };
        let dir_ttl = self.meta.dir_ttl();
        let fixed = snapshot.fixed.len();
        let base = snapshot.remote.as_ref().map(|l| l.numbers(|n| self.inodes.lock().unwrap().reserve(n)));
        let number = |i: usize| base.map(|b| b + (i - fixed) as u64);
        if plus && offset == 0 {
            // Every entry the kernel reads becomes an inode: room for all of them at once, not
            // by doubling (each step leaves the smaller table's memory behind as a hole).
            self.inodes.lock().unwrap().make_room(snapshot.len());
        }
        let mut start = offset as usize;
        while start < snapshot.len() {
            let end = (start + READDIR_BATCH).min(snapshot.len());
            // Sizes must be real before the kernel sees them: learn the unknown ones, concurrently.
            let sized: Vec<Option<Result<Entry>>> = join_all((start..end).map(|i| async move {
                match (snapshot.get(i), storage) {
                    (Some(DirSlot::Remote(_, e)), Some(s)) if plus && e.size.is_none() => {
                        Some(self.with_size(s, e.to_entry()).await)
                    }
                    _ => None,
                }
            }))
            .await;
            for (i, sized) in (start..end).zip(sized) {
                let Some(slot) = snapshot.get(i) else { break };
                let (name, attr, ttl) = match (slot, sized) {
                    (DirSlot::Fixed(name, target), _) => (name, self.known_attr(target)?, VIRTUAL_TTL),
                    (DirSlot::Remote(name, _), Some(Err(err))) => {
                        tracing::warn!(%name, error = %err, "could not learn the size; entry hidden");
                        continue;
                    }
                    // Plain readdir: a number and a type are all the kernel takes.
                    (DirSlot::Remote(name, e), None) if !plus => {
                        let known = self.inodes.lock().unwrap().child(ino, name);
                        let child = known.or(number(i)).expect("a remote folder's entry");
                        (name, self.remote_attr(child, e), dir_ttl)
                    }
                    (DirSlot::Remote(name, _), sized) => {
                        let listing = snapshot.remote.as_ref().expect("a remote slot is in a listing");
                        let index = i - fixed;
                        // No copy of an entry whose size the listing has (nearly all).
                        let entry = match sized {
                            Some(Ok(sized)) => RemoteEntry::at(listing, index, sized),
                            _ => RemoteEntry::Listed { listing: listing.clone(), index: index as u32 },
                        };
                        let attr = self.remote_attr(0, entry.view());
                        let kind = Kind::Remote { storage: storage.expect("remote child of a remote folder"), entry };
                        let child = self.inodes.lock().unwrap().upsert_numbered(ino, name, kind, number(i));
                        (name, Attr { ino: child, ..attr }, dir_ttl)
                    }
                };
                let item = DirItem { offset: i as u64 + 1, name, attr, ttl };
                if fill(item) {
                    return Ok(());
                }
                if plus && i >= 2 {
                    self.inodes.lock().unwrap().add_lookup(attr.ino);
                }
            }
            start = end;
        }
        Ok(())
    }
}
