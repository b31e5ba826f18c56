//! mkdir, rename, batchMove (tasks, auto-rename, refusal into a descendant), trash/untrash,
//! batchDelete (counted), quota: each checked over HTTP and on disk.

use panmount::sim::pikpak::Counters;
use reqwest::{Method, StatusCode};
use serde_json::json;

use super::client::Drive;

fn on_disk(d: &Drive, rel: &str) -> Option<Vec<u8>> {
    std::fs::read(d.dir.path().join(rel.trim_start_matches('/'))).ok()
}

#[tokio::test(flavor = "multi_thread")]
async fn mkdir_and_rename_change_the_tree_and_the_disk() {
    let d = Drive::start().await;
    let (status, v) = d
        .call(Method::POST, "/drive/v1/files", Some(json!({"kind": "drive#folder", "parent_id": "", "name": "new"})))
        .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!((v["file"]["kind"].as_str(), v["upload_type"].as_str()), (Some("drive#folder"), Some("")));
    let new_id = v["file"]["id"].as_str().unwrap().to_owned();
    assert!(d.dir.path().join("new").is_dir());
    assert!(d.names("").await.contains(&"new".to_owned()));
    assert_eq!(d.counter(|c| &c.mkdirs), 1);

    // Rename a folder: its descendants keep their ids and are served from the new place.
    let (sub_id, deep_id) = (d.id("/docs/sub"), d.id("/docs/sub/deep.txt"));
    let (status, v) =
        d.call(Method::PATCH, &format!("/drive/v1/files/{sub_id}"), Some(json!({"name": "renamed"}))).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["name"], "renamed");
    assert!(v["links"].is_object() && v["medias"].is_array());
    assert_eq!(d.id("/docs/renamed/deep.txt"), deep_id);
    assert_eq!(on_disk(&d, "/docs/renamed/deep.txt").as_deref(), Some(&b"deep bytes"[..]));
    assert!(on_disk(&d, "/docs/sub/deep.txt").is_none());
    assert_eq!(d.download(&deep_id).await, b"deep bytes");

    // Same name, or a name taken in the folder: code 3.
    let a = d.id("/docs/a.txt");
    for (name, reason) in [("a.txt", "file_rename_to_same_name"), ("renamed", "file_duplicated_name")] {
        let (status, v) = d.call(Method::PATCH, &format!("/drive/v1/files/{a}"), Some(json!({"name": name}))).await;
        assert_eq!(
            (status, v["error_code"].as_i64(), v["error"].as_str()),
            (StatusCode::BAD_REQUEST, Some(3), Some(reason))
        );
    }
    // A name a directory cannot hold is fine on the drive; the bytes stay reachable.
    let (status, _) = d.call(Method::PATCH, &format!("/drive/v1/files/{a}"), Some(json!({"name": "x/y"}))).await;
    assert_eq!(status, StatusCode::OK);
    assert!(d.names(&d.id("/docs")).await.contains(&"x/y".to_owned()));
    assert_eq!(d.download(&a).await, b"alpha");
    assert_eq!(d.counter(|c| &c.renames), 2);
    let _ = new_id;
}

#[tokio::test(flavor = "multi_thread")]
async fn moves_are_tasks_that_auto_rename_and_refuse_a_descendant() {
    let d = Drive::start().await;
    d.sim.pikpak.update(|k| k.batch_task_delay_ms = 3_600_000);
    let (a, other, docs) = (d.id("/docs/a.txt"), d.id("/other"), d.id("/docs"));
    let task = d.batch("batchMove", json!({"ids": [a], "to": {"parent_id": other}})).await;
    // The change lands with the task, not before.
    assert_eq!(d.task(&task).await["phase"], "PHASE_TYPE_RUNNING");
    assert!(d.names(&docs).await.contains(&"a.txt".to_owned()));
    d.sim.pikpak.update(|k| k.batch_task_delay_ms = 0);
    let t = d.task(&task).await;
    assert_eq!((t["phase"].as_str(), t["type"].as_str()), (Some("PHASE_TYPE_COMPLETE"), Some("move")));
    // `/other/a.txt` was there: the moved one is `a(1).txt`, same id, bytes moved on disk.
    assert_eq!(d.names(&other).await, ["a(1).txt", "a.txt"]);
    assert_eq!(d.id("/other/a(1).txt"), a);
    assert_eq!(on_disk(&d, "/other/a(1).txt").as_deref(), Some(&b"alpha"[..]));
    assert_eq!(d.download(&a).await, b"alpha");

    // Into itself or below itself: code 9, nothing moves.
    let sub = d.id("/docs/sub");
    for to in [&docs, &sub] {
        let (status, v) = d
            .call(Method::POST, "/drive/v1/files:batchMove", Some(json!({"ids": [docs], "to": {"parent_id": to}})))
            .await;
        assert_eq!((status, v["error_code"].as_i64()), (StatusCode::BAD_REQUEST, Some(9)), "{v}");
        assert_eq!(v["error"], "file_move_or_copy_to_cur");
    }
    assert_eq!(d.id("/docs/sub"), sub);

    // To the root with `parent_id` "".
    let task = d.batch("batchMove", json!({"ids": [sub], "to": {"parent_id": ""}})).await;
    assert_eq!(d.task(&task).await["phase"], "PHASE_TYPE_COMPLETE");
    assert_eq!(on_disk(&d, "/sub/deep.txt").as_deref(), Some(&b"deep bytes"[..]));
    // Now `docs` may go into `sub`, and `sub` may not go into `docs` (below itself).
    let task = d.batch("batchMove", json!({"ids": [docs], "to": {"parent_id": sub}})).await;
    assert_eq!(d.task(&task).await["phase"], "PHASE_TYPE_COMPLETE");
    let (status, v) =
        d.call(Method::POST, "/drive/v1/files:batchMove", Some(json!({"ids": [sub], "to": {"parent_id": docs}}))).await;
    assert_eq!((status, v["error_code"].as_i64()), (StatusCode::BAD_REQUEST, Some(9)), "{v}");
    assert!(d.dir.path().join("sub/docs").is_dir());
    assert_eq!(d.counter(|c| &c.batch_moves), 6);
}

#[tokio::test(flavor = "multi_thread")]
async fn trash_hides_keeps_the_bytes_and_is_recoverable() {
    let d = Drive::start().await;
    let (a, docs) = (d.id("/docs/a.txt"), d.id("/docs"));
    let task = d.batch("batchTrash", json!({"ids": [a]})).await;
    assert_eq!(d.task(&task).await["phase"], "PHASE_TYPE_COMPLETE");
    assert!(!d.names(&docs).await.contains(&"a.txt".to_owned()));
    let (status, v) = d.call(Method::GET, &format!("/drive/v1/files/{a}"), None).await;
    assert_eq!(
        (status, v["error_code"].as_i64(), v["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some(9), Some("file_in_recycle_bin"))
    );
    assert_eq!(d.sim.pikpak.trashed_paths(), ["/docs/a.txt"]);
    assert_eq!(on_disk(&d, "/docs/a.txt").as_deref(), Some(&b"alpha"[..]));
    assert!(d.sim.pikpak.node("/docs/a.txt").unwrap().trashed);

    // A new file under the trashed one's name does not touch its bytes.
    let (status, v) = d.init(&docs, "a.txt", b"").await;
    assert_eq!((status, v["file"]["name"].as_str()), (StatusCode::OK, Some("a.txt")));
    // Untrash: the name is taken now, so it comes back as a(1).txt with its bytes.
    let task = d.batch("batchUntrash", json!({"ids": [a]})).await;
    assert_eq!(d.task(&task).await["phase"], "PHASE_TYPE_COMPLETE");
    assert_eq!(d.names(&docs).await, ["a(1).txt", "a.txt", "sub"]);
    assert_eq!(d.download(&a).await, b"alpha");
    assert_eq!(d.sim.pikpak.bytes("/docs/a.txt").unwrap(), b"");
    assert!(d.sim.pikpak.trashed_paths().is_empty());

    // A trashed folder hides what is below it; the test helper untrashes too.
    let task = d.batch("batchTrash", json!({"ids": [d.id("/docs/sub")]})).await;
    assert_eq!(d.task(&task).await["phase"], "PHASE_TYPE_COMPLETE");
    let deep = d.sim.pikpak.node("/docs/sub/deep.txt").unwrap();
    assert!(deep.trashed);
    let (status, _) = d.call(Method::GET, &format!("/drive/v1/files/{}", deep.id), None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    d.sim.pikpak.untrash("/docs/sub");
    assert_eq!(d.download(&deep.id).await, b"deep bytes");

    // batchDelete works, and is counted (the driver must never call it).
    assert_eq!(d.counter(|c| &c.batch_deletes), 0);
    let task = d.batch("batchDelete", json!({"ids": [a]})).await;
    assert_eq!(d.task(&task).await["phase"], "PHASE_TYPE_COMPLETE");
    assert_eq!(d.counter(|c| &c.batch_deletes), 1);
    assert!(on_disk(&d, "/docs/a(1).txt").is_none());
    assert_eq!(Counters::get(&d.sim.pikpak.counters.batch_trashes), 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn quota_counts_uploads_and_refuses_what_does_not_fit() {
    let d = Drive::start().await;
    let about = |v: &serde_json::Value, k: &str| v["quota"][k].as_str().unwrap().parse::<u64>().unwrap();
    let (_, v) = d.call(Method::GET, "/drive/v1/about", None).await;
    let usage = about(&v, "usage");
    assert_eq!(usage, 5 + 10 + 11 + (300 << 10));
    d.sim.pikpak.update(|k| k.quota_limit = usage + 4);
    let (status, v) = d.init("", "big.txt", b"12345").await;
    assert_eq!(
        (status, v["error_code"].as_i64(), v["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some(8), Some("file_space_not_enough"))
    );
    assert!(d.sim.pikpak.node("/big.txt").is_none());
    // Exactly what is left fits.
    let (status, v) = d.init("", "small.txt", b"1234").await;
    assert_eq!(status, StatusCode::OK, "{v}");
    let creds = v["resumable"]["params"].clone();
    let put = d.oss(&creds, Method::PUT, "", b"1234".to_vec()).await.unwrap();
    assert_eq!(put.status, StatusCode::OK, "{}", put.text);
    let (_, v) = d.call(Method::GET, "/drive/v1/about", None).await;
    assert_eq!((about(&v, "usage"), about(&v, "limit")), (usage + 4, usage + 4));
    // Trashed files still count.
    let task = d.batch("batchTrash", json!({"ids": [d.id("/small.txt")]})).await;
    assert_eq!(d.task(&task).await["phase"], "PHASE_TYPE_COMPLETE");
    let (_, v) = d.call(Method::GET, "/drive/v1/about", None).await;
    assert_eq!(about(&v, "usage"), usage + 4);
}
