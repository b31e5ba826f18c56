//! The write capability against the simulated PikPak: a driver built from a config as
//! `drivers::build` builds it, each behaviour checked on the simulator's tree, stored bytes and
//! counters (never on timing).

use std::sync::atomic::Ordering;

use super::*;
use crate::drivers::{Progress, Staged};
use crate::sim::pikpak::{Counters, PutFault};
use crate::sim::{SimConfig, SimHandle};

struct Env {
    _data: tempfile::TempDir,
    staging: tempfile::TempDir,
    sim: SimHandle,
    d: PikPak,
}

async fn env() -> Env {
    let data = tempfile::tempdir().unwrap();
    let config = SimConfig { listen: "127.0.0.1:0".parse().unwrap(), data_dir: data.path().into(), cdn_auth: None };
    let sim = crate::sim::start(config).await.unwrap();
    let b = sim.base_url();
    let text = format!(
        "[[storage]]\npath = \"/p\"\ndriver = \"pikpak\"\napi_base = \"{b}\"\nuser_base = \"{b}\"\n\
         username = \"alice@example.com\"\npassword = \"secret\"\n"
    );
    let (options, ctx) = crate::drivers::test_support::options(&text);
    let d = PikPak::from_options(&options, &ctx).unwrap();
    d.login().await.unwrap();
    Env { _data: data, staging: tempfile::tempdir().unwrap(), sim, d }
}

use crate::drivers::test_support::content;

impl Env {
    fn w(&self) -> &dyn Writable {
        self.d.writable().unwrap()
    }

    fn count(&self, f: impl Fn(&Counters) -> &std::sync::atomic::AtomicU64) -> u64 {
        f(&self.sim.pikpak.counters).load(Ordering::Relaxed)
    }

    fn stage(&self, name: &str, bytes: &[u8]) -> Staged {
        crate::drivers::test_support::stage(self.w(), self.staging.path(), name, bytes)
    }

    async fn upload(&self, parent: &Entry, name: &str, bytes: &[u8]) -> Result<Entry> {
        let instant = || self.count(|c| &c.instant_uploads);
        crate::drivers::test_support::upload(self.w(), self.staging.path(), parent, name, bytes, instant).await
    }

    async fn names(&self, dir: &Entry) -> Vec<String> {
        let mut names: Vec<_> = Driver::list(&self.d, dir).await.unwrap().into_iter().map(|e| e.name).collect();
        names.sort();
        names
    }

    fn stored(&self, path: &str) -> Vec<u8> {
        self.sim.pikpak.bytes(path).unwrap_or_else(|| panic!("no complete file at {path}"))
    }
}

#[tokio::test]
async fn mkdir_rename_move_and_trash() {
    let e = env().await;
    // Batch tasks finish later than they are answered: the driver must wait for them.
    e.sim.pikpak.update(|k| k.batch_task_delay_ms = 300);
    let root = e.d.root();
    let a = e.w().mkdir(&root, "A").await.unwrap();
    let b = e.w().mkdir(&root, "B").await.unwrap();
    assert!(a.is_dir && b.is_dir);
    assert_eq!(e.names(&root).await, ["A", "B"]);

    let f = e.upload(&b, "x.txt", b"hello").await.unwrap();
    // In place.
    let f = e.w().rename(&f, &b, &b, "y.txt").await.unwrap();
    assert_eq!(f.name, "y.txt");
    assert_eq!(e.names(&b).await, ["y.txt"]);
    let renames = e.count(|c| &c.renames);
    assert_eq!(e.w().rename(&f, &b, &b, "y.txt").await.unwrap().name, "y.txt");
    assert_eq!(e.count(|c| &c.renames), renames, "nothing to do for the same name");
    // Taken name: Exists.
    e.upload(&b, "z.txt", b"other").await.unwrap();
    assert!(matches!(e.w().rename(&f, &b, &b, "z.txt").await, Err(Error::Exists)));
    // A move keeping the name.
    let f = e.w().rename(&f, &b, &a, "y.txt").await.unwrap();
    assert_eq!((f.name.as_str(), e.names(&a).await), ("y.txt", vec!["y.txt".to_string()]));
    assert_eq!(e.stored("/A/y.txt"), b"hello");
    // Move and rename where the old name collides: the service's `z(1).txt` is renamed to the
    // wanted name.
    let z = Driver::list(&e.d, &b).await.unwrap().into_iter().find(|x| x.name == "z.txt").unwrap();
    e.upload(&a, "z.txt", b"third").await.unwrap();
    let moved = e.w().rename(&z, &b, &a, "w.txt").await.unwrap();
    assert_eq!(moved.name, "w.txt");
    assert_eq!(e.names(&a).await, ["w.txt", "y.txt", "z.txt"]);
    assert_eq!(e.stored("/A/w.txt"), b"other");
    assert_eq!(e.stored("/A/z.txt"), b"third");
    assert_eq!(e.count(|c| &c.batch_moves), 2);

    // Trash: gone from listings, recoverable, never a permanent delete.
    e.w().trash(&moved).await.unwrap();
    e.w().trash(&b).await.unwrap();
    assert_eq!(e.names(&a).await, ["y.txt", "z.txt"]);
    assert_eq!(e.names(&root).await, ["A"]);
    assert_eq!(e.sim.pikpak.trashed_paths(), ["/A/w.txt", "/B"]);
    assert_eq!(e.count(|c| &c.batch_deletes), 0);
}

#[tokio::test]
async fn single_put_then_instant_upload_of_the_same_content() {
    let e = env().await;
    let root = e.d.root();
    let bytes = content(3 << 20, 1);
    let first = e.upload(&root, "one.bin", &bytes).await.unwrap();
    assert_eq!(first.size, Some(bytes.len() as u64));
    assert_eq!(e.stored("/one.bin"), bytes);
    assert_eq!(e.count(|c| &c.single_puts), 1);
    let sent = e.count(|c| &c.store_body_bytes);
    assert_eq!(sent, bytes.len() as u64);

    let second = e.upload(&root, "two.bin", &bytes).await.unwrap();
    assert_eq!(second.name, "two.bin");
    assert_eq!(e.count(|c| &c.instant_uploads), 1);
    assert_eq!(e.count(|c| &c.store_body_bytes), sent, "an instant upload sends no byte");
    assert_eq!(e.stored("/two.bin"), bytes);
    // Empty files are instant too.
    e.upload(&root, "empty", b"").await.unwrap();
    assert_eq!(e.count(|c| &c.instant_uploads), 2);
    assert_eq!(e.stored("/empty"), b"");
    // A name taken: the service stores `name(1)` and the entry says so (the core renames back).
    let third = e.upload(&root, "one.bin", &content(1000, 2)).await.unwrap();
    assert_eq!(third.name, "one(1).bin");
    assert_eq!(e.count(|c| &c.batch_deletes), 0);
}

#[tokio::test]
async fn multipart_is_byte_exact() {
    let e = env().await;
    // The file turns complete a while after the last byte: the driver waits for it.
    e.sim.pikpak.update(|k| k.completion_delay_ms = 500);
    let root = e.d.root();
    // Four parts: 4 MiB, 4 MiB, 4 MiB, 5 bytes.
    let bytes = content((12 << 20) + 5, 3);
    let entry = e.upload(&root, "big.bin", &bytes).await.unwrap();
    assert_eq!(entry.size, Some(bytes.len() as u64));
    assert_eq!(e.count(|c| &c.part_puts), 4);
    assert_eq!(e.count(|c| &c.completes), 1);
    assert!(e.stored("/big.bin") == bytes, "stored bytes differ");
}

#[tokio::test]
async fn part_faults_are_retried_to_exact_bytes() {
    for fault in [PutFault::Forbidden, PutFault::ServerError, PutFault::Reset] {
        let e = env().await;
        e.sim.pikpak.update(|k| {
            k.put_fault = fault;
            k.put_fault_count = 3;
        });
        let bytes = content((12 << 20) + 5, 4);
        e.upload(&e.d.root(), "f.bin", &bytes).await.unwrap_or_else(|err| panic!("{fault:?}: {err}"));
        assert!(e.stored("/f.bin") == bytes, "{fault:?}: stored bytes differ");
        assert_eq!(e.count(|c| &c.part_puts), 7, "{fault:?}: 4 parts and 3 failures");
        // A small file (one PUT) too.
        e.sim.pikpak.update(|k| k.put_fault_count = 2);
        let small = content(5000, 5);
        e.upload(&e.d.root(), "s.bin", &small).await.unwrap();
        assert_eq!(e.stored("/s.bin"), small);
        assert_eq!(e.count(|c| &c.upload_inits), 2, "{fault:?}: no new init for a part fault");
    }
}

#[tokio::test]
async fn init_rate_limit_is_retried() {
    let e = env().await;
    e.sim.pikpak.update(|k| k.init_429_count = 2);
    let bytes = content(7000, 6);
    e.upload(&e.d.root(), "r.bin", &bytes).await.unwrap();
    assert_eq!(e.stored("/r.bin"), bytes);
    assert_eq!(e.count(|c| &c.upload_inits), 1);
}

#[tokio::test]
async fn expired_credentials_start_over_and_leave_nothing_behind() {
    let e = env().await;
    // Credentials dead on arrival; once the first init is in, the next ones get good ones.
    e.sim.pikpak.update(|k| k.upload_creds_ttl_secs = 0);
    let pikpak = e.sim.pikpak.clone();
    let watcher = tokio::spawn(async move {
        while Counters::get(&pikpak.counters.upload_inits) == 0 {
            tokio::task::yield_now().await;
        }
        pikpak.update(|k| k.upload_creds_ttl_secs = 3600);
    });
    let bytes = content((12 << 20) + 5, 7);
    let entry = e.upload(&e.d.root(), "e.bin", &bytes).await.unwrap();
    watcher.await.unwrap();
    assert!(e.count(|c| &c.upload_inits) >= 2);
    assert_eq!(entry.name, "e.bin", "the first pending file was trashed before the new init");
    assert!(e.stored("/e.bin") == bytes, "stored bytes differ");
    assert_eq!(e.names(&e.d.root()).await, ["e.bin"]);
    assert!(e.sim.pikpak.trashed_paths().iter().all(|p| p.starts_with("/e")), "{:?}", e.sim.pikpak.trashed_paths());
    assert_eq!(e.count(|c| &c.batch_deletes), 0);
}

#[tokio::test]
async fn a_file_over_quota_is_no_space_with_nothing_created() {
    let e = env().await;
    e.sim.pikpak.update(|k| k.quota_limit = 10_000);
    let err = e.upload(&e.d.root(), "q.bin", &content(20_000, 8)).await.unwrap_err();
    assert!(matches!(err, Error::NoSpace(_)), "{err:?}");
    assert_eq!(err.errno(), libc::ENOSPC);
    assert_eq!(e.count(|c| &c.upload_inits), 0);
    assert_eq!(e.count(|c| &c.store_body_bytes), 0);
    assert!(e.names(&e.d.root()).await.is_empty());
    assert!(e.sim.pikpak.node("/q.bin").is_none());
}

#[tokio::test]
async fn a_stored_copy_that_does_not_match_is_trashed_and_an_error() {
    let e = env().await;
    let bytes = content(9000, 9);
    let mut staged = e.stage("m.bin", &bytes);
    staged.hash = super::gcid::gcid(b"something else");
    let progress = Progress::new(0);
    let err = e.w().upload(&e.d.root(), "m.bin", &staged, &progress).await.unwrap_err();
    assert!(!err.is_transient(), "{err:?}");
    assert!(err.to_string().contains("GCID"), "{err}");
    assert!(e.names(&e.d.root()).await.is_empty());
    assert_eq!(e.sim.pikpak.trashed_paths(), ["/m.bin"]);
    assert_eq!(e.count(|c| &c.batch_deletes), 0);
}

/// The object store's own refusals, at the store level: credentials the store calls expired
/// (while their `expiration` says otherwise) end the attempt; a bad signature is retried, then
/// a transient error.
#[tokio::test]
async fn store_refusals_expired_and_bad_signature() {
    use super::api::NewFile;
    use super::store::{Body, Store};
    let e = env().await;
    let init = |name: &str| {
        serde_json::json!({
            "kind": "drive#file", "name": name, "size": "5", "hash": super::gcid::gcid(b"hello"),
            "upload_type": "UPLOAD_TYPE_RESUMABLE", "objProvider": {"provider": "UPLOAD_TYPE_UNKNOWN"},
            "parent_id": "", "folder_type": "NORMAL",
        })
    };
    let params = |v: serde_json::Value| decode::<NewFile>("init", v).unwrap().resumable.unwrap().params;

    e.sim.pikpak.update(|k| k.upload_creds_ttl_secs = 0);
    let mut p = params(e.d.call(Method::POST, "/drive/v1/files", &[], Some(&init("a"))).await.unwrap());
    p.expiration = "2999-01-01T00:00:00Z".into();
    let store = Store { http: &e.d.client.http, params: &p };
    let err = store.send(Method::PUT, &[], Body::Xml("hello")).await.unwrap_err();
    assert!(err.expired, "{:?}", err.error);
    assert_eq!(e.count(|c| &c.store_403s), 1, "not retried with the same credentials");

    e.sim.pikpak.update(|k| k.upload_creds_ttl_secs = 3600);
    let mut p = params(e.d.call(Method::POST, "/drive/v1/files", &[], Some(&init("b"))).await.unwrap());
    p.access_key_secret.push('x');
    let store = Store { http: &e.d.client.http, params: &p };
    let err = store.send(Method::PUT, &[], Body::Xml("hello")).await.unwrap_err();
    assert!(!err.expired && err.error.is_transient(), "{:?}", err.error);
    assert_eq!(e.count(|c| &c.store_403s), 1 + 5, "tried 5 times");
}

/// A rename refused with code 9 `file_rename_uncompleted` (right after a move) is tried again
/// a few times, then reported.
#[tokio::test]
async fn rename_uncompleted_is_tried_again() {
    let e = env().await;
    let root = e.d.root();
    let f = e.upload(&root, "u.txt", b"u").await.unwrap();
    let refuse = |count| {
        let body = serde_json::json!({"error": "file_rename_uncompleted", "error_code": 9, "error_description": "x"});
        let fault =
            crate::sim::ApiFault { status: 400, body, count, path_contains: format!("/drive/v1/files/{}", f.id) };
        e.sim.knobs.update(|k| k.api_fault = Some(fault));
    };
    refuse(2);
    let f = e.w().rename(&f, &root, &root, "v.txt").await.unwrap();
    assert_eq!(e.names(&root).await, ["v.txt"]);
    refuse(50);
    let err = e.w().rename(&f, &root, &root, "w.txt").await.unwrap_err();
    assert!(err.to_string().contains("file_rename_uncompleted"), "{err}");
    let left = e.sim.knobs.get().api_fault.map_or(0, |f| f.count);
    assert_eq!(left, 50 - 5, "five tries");
    assert_eq!(e.names(&root).await, ["v.txt"]);
}

#[tokio::test]
async fn a_copy_by_the_listed_hash_sends_nothing_and_an_unknown_hash_leaves_nothing() {
    let e = env().await;
    let root = e.d.root();
    let bytes = content(3 << 20, 4);
    let first = e.upload(&root, "src.bin", &bytes).await.unwrap();
    let sent = e.count(|c| &c.store_body_bytes);
    let hash = crate::drivers::Driver::content_hash(&e.d, &first).unwrap();
    assert_eq!(hash.kind, crate::drivers::HashKind::Gcid);

    let copy = e.w().upload_by_hash(&root, "copy.bin", bytes.len() as u64, &hash.value).await.unwrap().unwrap();
    assert_eq!((copy.name.as_str(), copy.size), ("copy.bin", Some(bytes.len() as u64)));
    assert_eq!(e.stored("/copy.bin"), bytes);
    assert_eq!(e.count(|c| &c.store_body_bytes), sent, "a copy by hash sends no byte");

    // Content the service does not have: no file, and the pending one the init made is trashed.
    let unknown = "0123456789ABCDEF0123456789ABCDEF01234567";
    assert_eq!(e.w().upload_by_hash(&root, "none.bin", 1234, unknown).await.unwrap(), None);
    assert_eq!(e.names(&root).await, ["copy.bin", "src.bin"]);
    assert_eq!(e.count(|c| &c.batch_deletes), 0);
}
