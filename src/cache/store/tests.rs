use std::os::unix::fs::PermissionsExt;

use super::*;
use crate::drivers::Entry;

fn entry(name: &str, is_dir: bool) -> Entry {
    Entry {
        id: format!("id-{name}"),
        name: name.into(),
        is_dir,
        size: (!is_dir).then_some(42),
        mtime: UNIX_EPOCH + Duration::from_secs(1_700_000_000),
        version: "v1".into(),
    }
}

fn listing() -> Arc<Listing> {
    Arc::new(Listing::new(vec![entry("Movies", true), entry("a film (2001).mkv", false), entry("字幕.srt", false)]))
}

#[test]
fn round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let store = MetaStore::open(dir.path(), vec!["a".into(), "b".into()]);
    assert!(store.restored(0, "root").is_none());
    store.put(0, "root", listing());
    store.put(1, "other", Arc::new(Listing::new(vec![entry("x", false)])));
    // What this run fetched is not "restored": it is the live cache's to serve.
    assert!(store.restored(0, "root").is_none());
    store.flush();
    let file = dir.path().join("meta/a.log");
    assert_eq!(std::fs::metadata(&file).unwrap().permissions().mode() & 0o777, 0o600);

    let again = MetaStore::open(dir.path(), vec!["a".into(), "b".into()]);
    let got = again.restored(0, "root").expect("restored");
    assert_eq!(*got.entries, *listing());
    assert!(got.fetched.elapsed().unwrap() < Duration::from_secs(60));
    assert_eq!(again.restored(1, "other").unwrap().entries.at(0).name, "x");
    assert!(again.restored(1, "root").is_none(), "storages do not share listings");
    assert_eq!(again.restored_dirs(0).len(), 1);
    // SIGHUP: restored listings are no longer served, but stay on disk.
    again.forget_restored();
    assert!(again.restored(0, "root").is_none());
    assert!(MetaStore::open(dir.path(), vec!["a".into()]).restored(0, "root").is_some());
}

#[test]
fn remote_names_are_stored_and_shown_names_derived_again() {
    let dir = tempfile::tempdir().unwrap();
    let store = MetaStore::open(dir.path(), vec!["a".into()]);
    let mut older = entry("a/b", false);
    older.mtime -= Duration::from_secs(60);
    let remote = vec![entry("a/b", false), entry("..", true), older, entry("plain.mkv", false)];
    let remote = remote.into_iter().enumerate().map(|(i, e)| Entry { id: format!("id-{i}"), ..e }).collect();
    let fetched = Arc::new(Listing::new(remote));
    let shown: Vec<String> = fetched.iter_shown().map(|(n, _)| n.to_string()).collect();
    assert_eq!(shown, ["a／b (2)", "．．", "a／b", "plain.mkv"]);
    store.put(0, "root", fetched.clone());
    store.flush();
    let text = std::fs::read_to_string(dir.path().join("meta/a.log")).unwrap();
    assert!(text.contains(r#""name":"a/b""#) && !text.contains("a／b"), "remote names on disk: {text}");

    let got = MetaStore::open(dir.path(), vec!["a".into()]).restored(0, "root").expect("restored");
    let names: Vec<&str> = got.entries.iter().map(|e| e.name).collect();
    assert_eq!(names, ["a/b", "..", "a/b", "plain.mkv"], "the provider's names, kept");
    assert_eq!(got.entries.iter_shown().map(|(n, _)| n).collect::<Vec<_>>(), shown);
    assert_eq!(got.entries.named("a／b").map(|e| e.id), Some("id-2"), "the oldest keeps the name");
    assert_eq!(got.entries.named("a／b (2)").map(|e| e.id), Some("id-0"));
    assert!(got.entries.named("a/b").is_none(), "a remote name that cannot be shown is not found");
}

#[test]
fn nothing_is_written_when_nothing_changed() {
    let dir = tempfile::tempdir().unwrap();
    MetaStore::open(dir.path(), vec!["a".into()]).flush();
    assert!(!dir.path().join("meta").exists());
}

#[test]
fn a_corrupt_file_is_ignored() {
    let dir = tempfile::tempdir().unwrap();
    let store = MetaStore::open(dir.path(), vec!["a".into()]);
    store.put(0, "root", listing());
    store.flush();
    let file = dir.path().join("meta/a.log");
    let bytes = std::fs::read(&file).unwrap();
    for broken in [&bytes[..bytes.len() / 2], b"not json", b"{\"format\":1}", b""] {
        std::fs::write(&file, broken).unwrap();
        let store = MetaStore::open(dir.path(), vec!["a".into()]);
        assert!(store.restored(0, "root").is_none());
        // And the next write replaces it with a good one.
        store.put(0, "root", listing());
        store.flush();
        assert!(MetaStore::open(dir.path(), vec!["a".into()]).restored(0, "root").is_some());
    }
    // An unreadable store (a folder where the file should be) is ignored too.
    std::fs::remove_file(&file).unwrap();
    std::fs::create_dir(&file).unwrap();
    assert!(MetaStore::open(dir.path(), vec!["a".into()]).restored(0, "root").is_none());
}

#[test]
fn another_configuration_is_not_served() {
    let dir = tempfile::tempdir().unwrap();
    let store = MetaStore::open(dir.path(), vec!["a".into()]);
    store.put(0, "root", listing());
    store.flush();
    assert!(MetaStore::open(dir.path(), vec!["b".into()]).restored(0, "root").is_none());
    // A file whose recorded key does not match its name (copied by hand) is ignored too.
    std::fs::copy(dir.path().join("meta/a.log"), dir.path().join("meta/b.log")).unwrap();
    assert!(MetaStore::open(dir.path(), vec!["b".into()]).restored(0, "root").is_none());
}

fn storage(text: &str) -> StorageConfig {
    let config = crate::config::Config::parse(text, Path::new("/tmp/t.toml")).unwrap();
    config.storages.into_iter().next().unwrap()
}

#[test]
fn keys_change_with_the_configuration_and_not_with_secrets() {
    let base = "[[storage]]\npath = \"/p\"\ndriver = \"pikpak\"\nusername = \"alice\"\npassword = \"one\"\n";
    let key = storage_key(&storage(base));
    assert!(key.starts_with("pikpak-"));
    assert_eq!(key, storage_key(&storage(&base.replace("\"one\"", "\"two\""))), "a new password: same drive");
    for changed in [
        base.replace("alice", "bob"),
        base.replace("/p", "/q"),
        format!("{base}root_folder_id = \"VFold1\"\n"),
        format!("{base}api_base = \"http://127.0.0.1:1\"\n"),
    ] {
        assert_ne!(key, storage_key(&storage(&changed)), "{changed}");
    }
}

#[test]
fn stored_files_hold_no_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let store = MetaStore::open(dir.path(), vec!["a".into()]);
    store.put(0, "root", listing());
    store.flush();
    let text = std::fs::read_to_string(dir.path().join("meta/a.log")).unwrap();
    for word in ["http", "token", "sign", "auth_key"] {
        assert!(!text.contains(word), "{word} in {text}");
    }
}

fn numbered(n: usize, tag: &str) -> Arc<Listing> {
    Arc::new(Listing::new((0..n).map(|i| entry(&format!("{tag}{i:04}.mkv"), false)).collect()))
}

fn log_len(dir: &Path) -> u64 {
    std::fs::metadata(dir.join("meta/a.log")).unwrap().len()
}

#[test]
fn only_what_changed_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let store = MetaStore::open(dir.path(), vec!["a".into()]);
    store.put(0, "root", numbered(100, "f"));
    store.put(0, "sub", listing());
    store.flush();
    let first = log_len(dir.path());
    // Listed again, unchanged (a new copy, as a fetch makes): a line of its id and time.
    std::thread::sleep(Duration::from_millis(5));
    store.put(0, "root", numbered(100, "f"));
    store.flush();
    let second = log_len(dir.path());
    assert!(second > first && second - first < 100, "{first} -> {second}");
    let again = MetaStore::open(dir.path(), vec!["a".into()]);
    let root = again.restored(0, "root").unwrap();
    assert_eq!(*root.entries, *numbered(100, "f"));
    assert!(root.fetched > MetaStore::open(dir.path(), vec!["a".into()]).restored(0, "sub").unwrap().fetched);
    // Changed: the new entries win on reload.
    store.put(0, "root", numbered(3, "g"));
    store.flush();
    assert_eq!(*MetaStore::open(dir.path(), vec!["a".into()]).restored(0, "root").unwrap().entries, *numbered(3, "g"));
}

#[test]
fn a_torn_append_loses_only_itself() {
    let dir = tempfile::tempdir().unwrap();
    let store = MetaStore::open(dir.path(), vec!["a".into()]);
    store.put(0, "root", listing());
    store.flush();
    let whole = log_len(dir.path());
    store.put(0, "other", numbered(10, "x"));
    store.flush();
    // A crash in the middle of the second append, at several points (the end of line included).
    let bytes = std::fs::read(dir.path().join("meta/a.log")).unwrap();
    for cut in [whole + 1, whole + 40, bytes.len() as u64 - 1] {
        std::fs::write(dir.path().join("meta/a.log"), &bytes[..cut as usize]).unwrap();
        let store = MetaStore::open(dir.path(), vec!["a".into()]);
        assert_eq!(*store.restored(0, "root").unwrap().entries, *listing(), "cut at {cut}");
        assert!(store.restored(0, "other").is_none(), "cut at {cut}");
        // The next write goes where the good part ends, not after the torn tail.
        store.put(0, "third", numbered(2, "y"));
        store.flush();
        let text = std::fs::read_to_string(dir.path().join("meta/a.log")).unwrap();
        assert_eq!(text.lines().count(), 3, "header, root, third: cut at {cut}");
        let s = MetaStore::open(dir.path(), vec!["a".into()]);
        assert!(s.restored(0, "root").is_some() && s.restored(0, "third").is_some(), "cut at {cut}");
    }
}

#[test]
fn a_corrupt_record_drops_it_and_what_follows() {
    let dir = tempfile::tempdir().unwrap();
    let store = MetaStore::open(dir.path(), vec!["a".into()]);
    for id in ["one", "two", "three"] {
        store.put(0, id, numbered(5, id));
        store.flush();
    }
    let file = dir.path().join("meta/a.log");
    let mut bytes = std::fs::read(&file).unwrap();
    let second = bytes.windows(5).position(|w| w == b"\"two\"").unwrap();
    bytes[second + 1] = b'\\';
    std::fs::write(&file, &bytes).unwrap();
    let store = MetaStore::open(dir.path(), vec!["a".into()]);
    assert!(store.restored(0, "one").is_some());
    assert!(store.restored(0, "two").is_none());
    assert!(store.restored(0, "three").is_none(), "after a bad record nothing is trusted");
    store.put(0, "two", numbered(5, "two"));
    store.flush();
    let again = MetaStore::open(dir.path(), vec!["a".into()]);
    assert!(again.restored(0, "one").is_some() && again.restored(0, "two").is_some());
}

#[test]
fn the_log_is_compacted() {
    let dir = tempfile::tempdir().unwrap();
    let store = MetaStore::open(dir.path(), vec!["a".into()]);
    let mut largest = 0;
    for round in 0..300 {
        store.put(0, "root", numbered(100, &format!("r{round}-")));
        store.put(0, "still", listing());
        store.flush();
        largest = largest.max(log_len(dir.path()));
    }
    assert!(largest < 3 * COMPACT_SLACK, "{largest}");
    let again = MetaStore::open(dir.path(), vec!["a".into()]);
    assert_eq!(*again.restored(0, "root").unwrap().entries, *numbered(100, "r299-"));
    assert_eq!(*again.restored(0, "still").unwrap().entries, *listing());
    assert_eq!(std::fs::metadata(dir.path().join("meta/a.log")).unwrap().permissions().mode() & 0o777, 0o600);
}
