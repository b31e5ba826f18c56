//! [`FileKey`]: which version of which file of which storage, the one key of the link, size,
//! block and disk caches (and of a file's shared connection limit).
//!
//! Made of the storage's path (not its index: the disk cache names blocks with it, and a
//! restart may number storages differently), the entry's id and its version, joined in one
//! shared allocation so that a file's many block keys cost a pointer each. NUL separates the
//! parts and is in none of them (provider ids and versions are printable; `123pan_link` ids are
//! made of shown names, where NUL is escaped). A new version is a new key, so no cache ever
//! serves the bytes, size or link of an older version.

use std::sync::Arc;

use crate::drivers::Entry;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FileKey(Arc<str>);

impl FileKey {
    pub fn new(storage_path: &str, entry: &Entry) -> Self {
        FileKey(Arc::from(format!("{storage_path}\0{}\0{}", entry.id, entry.version)))
    }

    /// The joined text (stable across restarts: the disk cache hashes it into file names).
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// A key from any text, for the caches' own tests.
    #[cfg(test)]
    pub(crate) fn for_tests(text: &str) -> Self {
        FileKey(Arc::from(text))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::UNIX_EPOCH;

    fn entry(id: &str, version: &str) -> Entry {
        Entry { id: id.into(), name: "n".into(), is_dir: false, size: None, mtime: UNIX_EPOCH, version: version.into() }
    }

    #[test]
    fn storage_id_and_version_each_make_another_key() {
        let k = FileKey::new("/a", &entry("f", "1"));
        assert_eq!(k, FileKey::new("/a", &entry("f", "1")));
        assert_ne!(k, FileKey::new("/b", &entry("f", "1")));
        assert_ne!(k, FileKey::new("/a", &entry("g", "1")));
        assert_ne!(k, FileKey::new("/a", &entry("f", "2")));
    }
}
