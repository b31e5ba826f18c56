//! A folder's entries in one buffer (issue 12: a folder of a million files).
//!
//! A driver [`Entry`] costs 112 bytes inline plus its three strings on the heap (id, name and
//! version: 32 bytes each at least, the allocator's smallest block), about 210 bytes. Here an
//! entry is a 32-byte [`Record`] (where its strings end, its size, its time, its flags) and its
//! strings, one after another in one string shared by the folder; the name is not stored again
//! when the id ends with it (an id that is a path, as a 123pan link's is). About 70 bytes an
//! entry of a 123pan link tree. Entries are handed out as views ([`EntryRef`]).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::drivers::{Entry, EntryRef};

#[derive(Debug, Default, PartialEq, Eq)]
pub struct Packed {
    /// Every entry's id, name (unless its id ends with it) and version, in entry order.
    text: Box<str>,
    records: Box<[Record]>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Record {
    size: u64,
    /// The time: seconds since 1970 (negative before), then `nanos` more.
    secs: i64,
    /// Where the id ends in the text; it starts where the entry before ends.
    id_end: u32,
    /// The name's length, and [`NAME_IN_ID`].
    name_len: u32,
    /// Where the version ends, which is where the entry ends.
    end: u32,
    /// The time's nanoseconds (below 2^30), and [`DIR`] and [`SIZED`].
    nanos: u32,
}

const DIR: u32 = 1 << 31;
/// The size is known (`Entry::size` is `Some`).
const SIZED: u32 = 1 << 30;
/// The name is the end of the id, not stored after it.
const NAME_IN_ID: u32 = 1 << 31;
/// Entries taken from the driver's vector between two shrinks of it: its memory is given back
/// while the packed copy grows, so that a big folder is not held twice at the peak.
const SHRINK_EVERY: usize = 1 << 16;

/// The strings of `e` as stored, one after another: its id, its name unless the id ends with
/// it, its version.
fn parts(e: &Entry) -> [&str; 3] {
    [&e.id, if e.id.ends_with(e.name.as_str()) { "" } else { &e.name }, &e.version]
}

/// The record of `e`, whose strings ([`parts`]) are stored from `start` on.
fn record(e: &Entry, start: usize) -> Record {
    let offset = |at: usize| u32::try_from(at).expect("a folder's ids and names fit in 4 GiB");
    let [id, name, version] = parts(e);
    let (secs, nanos) = split(e.mtime);
    let flags = if e.is_dir { DIR } else { 0 } | if e.size.is_some() { SIZED } else { 0 };
    Record {
        size: e.size.unwrap_or(0),
        secs,
        id_end: offset(start + id.len()),
        name_len: offset(e.name.len()) | if name.is_empty() { NAME_IN_ID } else { 0 },
        end: offset(start + id.len() + name.len() + version.len()),
        nanos: nanos | flags,
    }
}

impl Packed {
    pub fn new(mut entries: Vec<Entry>) -> Packed {
        let stored = |e: &Entry| parts(e).iter().map(|p| p.len()).sum::<usize>();
        let total: usize = entries.iter().map(stored).sum();
        let mut text = vec![0u8; total];
        let mut records = vec![Record::default(); entries.len()];
        // From the last entry back, so that the vector can shrink as it goes.
        let mut end = total;
        while let Some(e) = entries.pop() {
            let start = end - stored(&e);
            let mut at = start;
            for part in parts(&e) {
                text[at..at + part.len()].copy_from_slice(part.as_bytes());
                at += part.len();
            }
            records[entries.len()] = record(&e, start);
            end = start;
            if entries.len() % SHRINK_EVERY == 0 {
                entries.shrink_to_fit();
            }
        }
        let text = String::from_utf8(text).expect("whole strings, one after another");
        Packed { text: text.into_boxed_str(), records: records.into_boxed_slice() }
    }

    /// Entries packed one at a time, as they arrive (a listing read from the store: no vector
    /// of a million driver entries first).
    pub fn collect(entries: impl IntoIterator<Item = Entry>) -> Packed {
        let (mut text, mut records) = (String::new(), Vec::new());
        for e in entries {
            records.push(record(&e, text.len()));
            parts(&e).iter().for_each(|part| text.push_str(part));
        }
        Packed { text: text.into_boxed_str(), records: records.into_boxed_slice() }
    }

    pub fn len(&self) -> usize {
        self.records.len()
    }

    /// The entry at `index` (which must be below `len`).
    pub fn get(&self, index: usize) -> EntryRef<'_> {
        let r = &self.records[index];
        let start = index.checked_sub(1).map_or(0, |before| self.records[before].end as usize);
        let name = self.name(index);
        let version_start = match r.name_len & NAME_IN_ID {
            0 => r.id_end as usize + name.len(),
            _ => r.id_end as usize,
        };
        EntryRef {
            id: &self.text[start..r.id_end as usize],
            name,
            is_dir: r.nanos & DIR != 0,
            size: (r.nanos & SIZED != 0).then_some(r.size),
            mtime: join(r.secs, r.nanos & !(DIR | SIZED)),
            version: &self.text[version_start..r.end as usize],
        }
    }

    /// The name of the entry at `index` (a name index sorts by it: only what it needs).
    pub fn name(&self, index: usize) -> &str {
        let r = &self.records[index];
        let (id_end, len) = (r.id_end as usize, (r.name_len & !NAME_IN_ID) as usize);
        match r.name_len & NAME_IN_ID {
            0 => &self.text[id_end..id_end + len],
            _ => &self.text[id_end - len..id_end],
        }
    }
}

/// `t` as seconds since 1970 (negative before) and nanoseconds after them.
fn split(t: SystemTime) -> (i64, u32) {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => (d.as_secs() as i64, d.subsec_nanos()),
        Err(before) => {
            let d = before.duration();
            match d.subsec_nanos() {
                0 => (-(d.as_secs() as i64), 0),
                n => (-(d.as_secs() as i64) - 1, 1_000_000_000 - n),
            }
        }
    }
}

fn join(secs: i64, nanos: u32) -> SystemTime {
    let whole = Duration::from_secs(secs.unsigned_abs());
    let at = if secs >= 0 { UNIX_EPOCH + whole } else { UNIX_EPOCH - whole };
    at + Duration::from_nanos(nanos.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(id: &str, name: &str, version: &str, size: Option<u64>, mtime: SystemTime, is_dir: bool) -> Entry {
        Entry { id: id.into(), name: name.into(), is_dir, size, mtime, version: version.into() }
    }

    #[test]
    fn entries_come_back_as_they_went_in() {
        let t = |secs: i64, nanos: u32| join(secs, nanos);
        let entries = vec![
            entry("/d/a.mkv", "a.mkv", "v1", Some(7), t(1_700_000_000, 123), false),
            entry("VNx1", "字幕.srt", "", None, t(-1, 999_999_999), false),
            entry("", "", "", Some(0), UNIX_EPOCH, true),
            entry("/x/b", "b", "0123456789abcdef", Some(u64::MAX), t(-86_400 * 400, 5), true),
            entry("id", "name", "v", Some(1), UNIX_EPOCH - Duration::new(3, 500), false),
            entry("same", "same", "", Some(1), UNIX_EPOCH + Duration::new(u32::MAX as u64 * 4, 999_999_999), false),
        ];
        // More than one shrink of the driver's vector.
        let many: Vec<Entry> = (0..SHRINK_EVERY * 2 + 3)
            .map(|i| {
                entry(&format!("/f/{i}"), &i.to_string(), &format!("{i:x}"), Some(i as u64), UNIX_EPOCH, i % 3 == 0)
            })
            .collect();
        for list in [entries, many, Vec::new()] {
            let packed = Packed::new(list.clone());
            assert_eq!(packed.len(), list.len());
            for (i, e) in list.iter().enumerate() {
                assert_eq!(packed.get(i), e.view(), "{i}");
                assert_eq!(packed.get(i).to_entry(), *e);
            }
            assert_eq!(packed, Packed::collect(list.clone()), "one at a time: the same");
            assert_eq!(packed, Packed::new(list), "the same entries pack the same");
        }
    }

    #[test]
    fn a_name_at_the_end_of_its_id_is_not_stored_twice() {
        let path = Packed::new(vec![entry("/movies/a.mkv", "a.mkv", "", Some(1), UNIX_EPOCH, false)]);
        let other = Packed::new(vec![entry("VNx1", "a.mkv", "", Some(1), UNIX_EPOCH, false)]);
        assert_eq!(&*path.text, "/movies/a.mkv");
        assert_eq!(&*other.text, "VNx1a.mkv");
    }
}
