use super::api::{File, FileList};
use super::*;
use crate::drivers::decode;

fn page(names: &[&str], next: &str) -> FileList {
    FileList {
        files: names.iter().map(|n| File { id: n.to_string(), name: n.to_string(), ..Default::default() }).collect(),
        next_page_token: next.into(),
    }
}

fn run(pages: Vec<(&'static str, FileList)>) -> (Vec<String>, Vec<String>) {
    let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    let asked = std::sync::Mutex::new(Vec::new());
    let pages = std::sync::Mutex::new(pages);
    let fetch = |token: String| {
        asked.lock().unwrap().push(token.clone());
        let mut p = pages.lock().unwrap();
        let i = p.iter().position(|(t, _)| *t == token).expect("asked for an unknown page");
        let (_, list) = p.remove(i);
        async move { Ok(list) }
    };
    let entries = rt.block_on(collect_pages("F", fetch, |f| Some(PikPak::entry(f)))).unwrap();
    (entries.into_iter().map(|e| e.name).collect(), asked.into_inner().unwrap())
}

#[test]
fn paging_stops_on_empty_token() {
    let (names, asked) = run(vec![("", page(&["a", "b"], "p2")), ("p2", page(&["c"], ""))]);
    assert_eq!(names, ["a", "b", "c"]);
    assert_eq!(asked, ["", "p2"]);
}

#[test]
fn paging_stops_on_an_empty_page_or_a_repeated_token() {
    let (names, asked) = run(vec![("", page(&["a"], "p2")), ("p2", page(&[], "p3"))]);
    assert_eq!((names.len(), asked.len()), (1, 2));
    let (names, asked) = run(vec![("", page(&["a"], "p2")), ("p2", page(&["b"], "p3")), ("p3", page(&["c"], "p2"))]);
    assert_eq!(names, ["a", "b", "c"]);
    assert_eq!(asked, ["", "p2", "p3"]);
}

#[test]
fn entries_from_files() {
    let f: File = serde_json::from_value(serde_json::json!({
        "kind": "drive#file", "id": "VF1", "name": "a.mp4", "size": "1048576",
        "hash": "0123456789ABCDEF0123456789ABCDEF01234567",
        "modified_time": "2022-06-22T08:03:27+08:00", "links": {}, "medias": []
    }))
    .unwrap();
    let e = PikPak::entry(&f);
    assert_eq!((e.id.as_str(), e.size, e.is_dir), ("VF1", Some(1_048_576), false));
    assert_eq!(e.mtime, links::to_system_time(1_655_856_207));
    assert_eq!(e.version, "0123456789ABCDEF0123456789ABCDEF01234567");
    let d: File =
        serde_json::from_value(serde_json::json!({"kind": "drive#folder", "id": "VD", "name": "M", "size": "0"}))
            .unwrap();
    assert!(PikPak::entry(&d).is_dir);
}

fn block_on<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(f)
}

#[test]
fn endless_page_tokens_end_with_an_error() {
    let fetch = |token: String| {
        let n: u64 = token.strip_prefix('p').and_then(|t| t.parse().ok()).unwrap_or(0);
        async move { Ok(page(&[&format!("f{n}")], &format!("p{}", n + 1))) }
    };
    let err = block_on(collect_pages("F", fetch, |f| Some(PikPak::entry(f)))).unwrap_err();
    assert!(err.to_string().contains("\"F\" did not end after 10000 pages (10000 entries)"), "{err}");
}

#[test]
fn a_page_repeated_under_new_tokens_lists_each_file_once() {
    let (names, _) =
        run(vec![("", page(&["a", "b"], "p2")), ("p2", page(&["a", "b"], "p3")), ("p3", page(&["c"], ""))]);
    assert_eq!(names, ["a", "b", "c"]);
}

#[test]
fn absurd_sizes_are_unknown_never_wrong() {
    use serde_json::json;
    let absurd = [
        json!(-5),
        json!("-5"),
        json!(1e30),
        json!(u64::MAX),
        json!("99999999999999999999"),
        json!(1.5),
        json!("12abc"),
        json!(true),
        json!({}),
        json!([1]),
        json!(null),
    ];
    for size in absurd {
        let f: File = decode("file", json!({"kind": "drive#file", "id": "a", "name": "a", "size": size})).unwrap();
        assert_eq!(PikPak::entry(&f).size, None, "{size}");
    }
    let f: File = decode("file", json!({"size": i64::MAX, "medias": []})).unwrap();
    assert_eq!(f.size, Some(i64::MAX as u64));
    // Every field missing: a file of unknown size, named "", which the core shows as `‛`.
    let e = PikPak::entry(&decode::<File>("file", json!({})).unwrap());
    assert_eq!((e.size, e.name.as_str(), e.is_dir), (None, "", false));
    let q: About = decode("about", json!({"quota": {"limit": "-1", "usage": 1e300}})).unwrap();
    assert_eq!((q.quota.limit, q.quota.usage), (None, None));
}

#[test]
fn wrong_types_are_errors_that_name_the_field() {
    use serde_json::json;
    let err = decode::<FileList>("file list", json!({"files": [{"id": "a"}, {"id": "b", "name": 5}]})).err().unwrap();
    assert!(
        err.to_string().contains("file list: files[1].name: invalid type: integer `5`, expected a string"),
        "{err}"
    );
    let err = decode::<FileList>("file list", json!({"files": "none"})).err().unwrap();
    assert!(err.to_string().contains("file list: files: invalid type: string"), "{err}");
    let err = decode::<FileList>("file list", json!("text")).err().unwrap();
    assert!(err.to_string().contains("file list: .: invalid type: string \"text\""), "{err}");
}

/// The fuzz target of PikPak's JSON (see `crate::fuzz`): every wire type, and what turns
/// them into entries, links and tasks.
mod fuzz {
    use proptest::prelude::*;
    use serde::de::DeserializeOwned;
    use serde_json::Value;

    use super::super::api::{
        About, BatchReply, CaptchaInit, ErrorEnvelope, File, FileList, NewFile, NewTask, TaskList, Token,
    };
    use super::super::{PikPak, links, offline};
    use crate::drivers::decode;
    use crate::drivers::pikpak_share::api::{ShareFileInfo, SharePage};

    const KEYS: &[&str] = &[
        "files",
        "next_page_token",
        "kind",
        "id",
        "parent_id",
        "name",
        "size",
        "hash",
        "phase",
        "trashed",
        "created_time",
        "modified_time",
        "web_content_link",
        "links",
        "application/octet-stream",
        "url",
        "expire",
        "medias",
        "media_id",
        "media_name",
        "is_origin",
        "category",
        "link",
        "quota",
        "limit",
        "usage",
        "tasks",
        "task",
        "file_id",
        "file_name",
        "file_size",
        "message",
        "progress",
        "access_token",
        "refresh_token",
        "expires_in",
        "sub",
        "share_status",
        "share_status_text",
        "pass_code_token",
        "file_info",
        "error",
        "error_code",
        "error_description",
        "detail",
        "captcha_token",
        "upload_type",
        "resumable",
        "params",
        "endpoint",
        "expiration",
        "task_id",
    ];

    /// Decode `v` as `T`: a value goes to `then`; an error must say what and where.
    fn check<T: DeserializeOwned>(v: &Value, then: impl FnOnce(T)) {
        match decode::<T>("answer", v.clone()) {
            Ok(t) => then(t),
            Err(e) => assert!(e.to_string().starts_with("invalid response: answer: "), "{e}"),
        }
    }

    fn use_file(f: &File) {
        let e = PikPak::entry(f);
        assert!(e.size.is_none_or(|s| s <= i64::MAX as u64));
        for flag in [false, true] {
            if let Some((url, expire)) = links::choose_personal(f, flag) {
                links::link_expiry(&url, &expire);
            }
            if let Some((url, expire, _)) = links::choose_share(f, flag) {
                links::link_expiry(&url, &expire);
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(crate::fuzz::cases(400)))]

        #[test]
        fn fuzz_pikpak_json(v in prop_oneof![crate::fuzz::json(KEYS), crate::fuzz::json_object(KEYS)]) {
            check::<FileList>(&v, |l| l.files.iter().for_each(use_file));
            check::<File>(&v, |f| use_file(&f));
            check::<SharePage>(&v, |p| p.files.iter().for_each(use_file));
            check::<ShareFileInfo>(&v, |i| use_file(&i.file_info));
            check::<TaskList>(&v, |l| l.tasks.into_iter().for_each(|t| assert!(offline::task(t).progress <= 100)));
            check::<NewTask>(&v, drop);
            check::<NewFile>(&v, |n| n.file.iter().for_each(use_file));
            check::<BatchReply>(&v, drop);
            check::<About>(&v, drop);
            check::<Token>(&v, drop);
            check::<CaptchaInit>(&v, drop);
            check::<ErrorEnvelope>(&v, drop);
        }
    }
}
