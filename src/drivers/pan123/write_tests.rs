//! The write capability against the simulated 123pan: a driver built from a config as
//! `drivers::build` builds it, each behaviour checked on the simulator's tree, stored bytes and
//! counters (never on timing).

use std::sync::atomic::{AtomicU64, Ordering};

use super::*;
use crate::drivers::Writable;
use crate::sim::pan123::Pan123Counters;
use crate::sim::{SimConfig, SimHandle};

struct Env {
    _data: tempfile::TempDir,
    staging: tempfile::TempDir,
    sim: SimHandle,
    d: Pan123,
}

async fn env() -> Env {
    let data = tempfile::tempdir().unwrap();
    let config = SimConfig { listen: "127.0.0.1:0".parse().unwrap(), data_dir: data.path().into(), cdn_auth: None };
    let sim = crate::sim::start(config).await.unwrap();
    sim.pan123.update(|k| {
        k.list_interval_ms = 0;
        k.slice_size = 1 << 20;
    });
    let b = sim.base_url();
    let text = format!(
        "[[storage]]\npath = \"/p\"\ndriver = \"123pan\"\napi_base = \"{b}\"\nlogin_base = \"{b}\"\n\
         username = \"{}\"\npassword = \"{}\"\nlist_interval_ms = 0\n",
        crate::sim::pan123::PHONE,
        crate::sim::pan123::PASSWORD
    );
    let (options, ctx) = crate::drivers::test_support::options(&text);
    let d = Pan123::from_options(&options, &ctx).unwrap();
    d.login().await.unwrap();
    Env { _data: data, staging: tempfile::tempdir().unwrap(), sim, d }
}

use crate::drivers::test_support::content;

impl Env {
    fn w(&self) -> &dyn Writable {
        self.d.writable().unwrap()
    }

    fn count(&self, f: impl Fn(&Pan123Counters) -> &AtomicU64) -> u64 {
        f(&self.sim.pan123.counters).load(Ordering::Relaxed)
    }

    async fn upload(&self, parent: &Entry, name: &str, bytes: &[u8]) -> Result<Entry> {
        let instant = || self.count(|c| &c.instant_uploads);
        crate::drivers::test_support::upload(self.w(), self.staging.path(), parent, name, bytes, instant).await
    }

    async fn names(&self, dir: &Entry) -> Vec<String> {
        Driver::list(&self.d, dir).await.unwrap().into_iter().map(|e| e.name).collect()
    }

    fn stored(&self, path: &str) -> Vec<u8> {
        self.sim.pan123.bytes(path).unwrap_or_else(|| panic!("no file at {path}"))
    }
}

#[tokio::test]
async fn mkdir_rename_move_and_trash() {
    let e = env().await;
    let root = e.d.root();
    let a = e.w().mkdir(&root, "A").await.unwrap();
    let b = e.w().mkdir(&root, "B").await.unwrap();
    assert!(a.is_dir && b.is_dir && a.id != b.id);
    // The service would hand back the existing folder: that is EEXIST, and no new folder.
    assert!(matches!(e.w().mkdir(&root, "A").await, Err(Error::Exists)));
    assert!(e.sim.pan123.node("/A(1)").is_none());

    let f = e.upload(&b, "x.txt", b"hello").await.unwrap();
    let f = e.w().rename(&f, &b, &b, "y.txt").await.unwrap();
    assert_eq!(e.names(&b).await, ["y.txt"]);
    let f = e.w().rename(&f, &b, &a, "y.txt").await.unwrap();
    assert_eq!((e.names(&a).await, e.stored("/A/y.txt")), (vec!["y.txt".to_string()], b"hello".to_vec()));
    // Moved and renamed where the old name is taken in the destination: still lands as asked.
    e.upload(&b, "y.txt", b"other").await.unwrap();
    let g = Driver::list(&e.d, &b).await.unwrap().into_iter().find(|x| x.name == "y.txt").unwrap();
    let g = e.w().rename(&g, &b, &a, "w.txt").await.unwrap();
    assert_eq!(e.names(&a).await, ["w.txt", "y.txt"]);
    assert_eq!((e.stored("/A/w.txt"), e.stored("/A/y.txt")), (b"other".to_vec(), b"hello".to_vec()));
    // ...and where the new name is taken in the source.
    e.upload(&b, "v.txt", b"third").await.unwrap();
    e.upload(&a, "q.txt", b"fourth").await.unwrap();
    let q = Driver::list(&e.d, &a).await.unwrap().into_iter().find(|x| x.name == "q.txt").unwrap();
    e.w().rename(&q, &a, &b, "v2.txt").await.unwrap();
    assert_eq!(e.stored("/B/v2.txt"), b"fourth");

    e.w().trash(&g).await.unwrap();
    e.w().trash(&f).await.unwrap();
    e.w().trash(&a).await.unwrap();
    assert_eq!(e.names(&root).await.iter().filter(|n| *n == "A").count(), 0);
    let trashed = e.sim.pan123.trashed_paths();
    assert!(trashed.contains(&"/A/w.txt".to_string()) && trashed.contains(&"/A".to_string()), "{trashed:?}");
}

#[tokio::test]
async fn uploads_in_parts_once_and_instant_by_md5() {
    let e = env().await;
    let root = e.d.root();
    let bytes = content((3 << 20) + 5, 1);
    let f = e.upload(&root, "three.bin", &bytes).await.unwrap();
    assert_eq!((f.name.as_str(), f.size), ("three.bin", Some(bytes.len() as u64)));
    assert_eq!(e.stored("/three.bin"), bytes);
    assert_eq!(e.count(|c| &c.part_puts), 4);
    assert_eq!(e.count(|c| &c.presign_calls), 1, "one batch call for four parts");
    // The entry is the one listings show (a read needs its S3KeyFlag).
    let listed = Driver::list(&e.d, &root).await.unwrap().into_iter().find(|x| x.name == "three.bin").unwrap();
    assert_eq!((listed.id.as_str(), listed.version.as_str()), (f.id.as_str(), f.version.as_str()));

    // The same content again: no byte sent, and found even when the answer's id is 0.
    e.sim.pan123.update(|k| k.reuse_file_id_zero = true);
    let again = e.upload(&root, "again.bin", &bytes).await.unwrap();
    assert_eq!(again.name, "again.bin");
    assert_eq!((e.count(|c| &c.instant_uploads), e.count(|c| &c.part_puts)), (1, 4));
    assert_eq!(e.stored("/again.bin"), bytes);

    // A name taken: stored as name(1), for the core to settle.
    let other = content(1000, 2);
    let dup = e.upload(&root, "three.bin", &other).await.unwrap();
    assert_eq!(dup.name, "three(1).bin");
}

#[tokio::test]
async fn refused_urls_are_fetched_again_once_and_empty_files_refused_with_a_reason() {
    let e = env().await;
    let root = e.d.root();
    // All four parts refused with 403 at once: their URLs are fetched again once, not four times.
    e.sim.pan123.update(|k| (k.put_fault, k.put_fault_count) = (crate::sim::pikpak::PutFault::Forbidden, 4));
    let bytes = content(4 << 20, 3);
    e.upload(&root, "late.bin", &bytes).await.unwrap();
    assert_eq!(e.stored("/late.bin"), bytes);
    assert_eq!(e.count(|c| &c.part_403s), 4);
    assert_eq!(e.count(|c| &c.presign_calls), 2);

    e.sim.pan123.update(|k| k.refuse_empty = true);
    let err = e.upload(&root, "empty.txt", b"").await.unwrap_err();
    assert!(err.to_string().contains("refused an empty file"), "{err}");
    assert!(!err.is_transient());
}

#[tokio::test]
async fn a_copy_by_the_listed_md5_sends_nothing_and_an_unknown_md5_makes_nothing() {
    let e = env().await;
    let root = e.d.root();
    let bytes = content(2 << 20, 5);
    let first = e.upload(&root, "src.bin", &bytes).await.unwrap();
    let parts = e.count(|c| &c.part_puts);
    let hash = Driver::content_hash(&e.d, &first).unwrap();
    assert_eq!(hash.kind, crate::drivers::HashKind::Md5);

    let copy = e.w().upload_by_hash(&root, "copy.bin", bytes.len() as u64, &hash.value).await.unwrap().unwrap();
    assert_eq!((copy.name.as_str(), copy.size), ("copy.bin", Some(bytes.len() as u64)));
    assert_eq!(e.stored("/copy.bin"), bytes);
    assert_eq!(e.count(|c| &c.part_puts), parts, "a copy by MD5 sends no part");

    let unknown = "0123456789abcdef0123456789abcdef";
    assert_eq!(e.w().upload_by_hash(&root, "none.bin", 1234, unknown).await.unwrap(), None);
    assert_eq!(e.names(&root).await, ["copy.bin", "src.bin"]);
}
