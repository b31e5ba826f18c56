//! 123pan answers that are wrong on purpose: absurd sizes, missing fields, wrong types, pages
//! that never end; and the fuzz target of 123pan's JSON (see `crate::fuzz`).

use proptest::prelude::*;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use super::api::{DownloadInfo, Envelope, ListPage, LoginData, Redirect, UserInfo};
use super::client::decode_envelope;
use super::{FileRef, entry_of, list_all};
use crate::drivers::decode;
use crate::error::Result;

fn file(id: i64, size: Value) -> Value {
    json!({"FileId": id, "FileName": format!("f{id}"), "Type": 0, "Size": size, "Etag": "e", "S3KeyFlag": "k", "UpdateAt": "2024-05-01T12:00:00+08:00"})
}

fn block_on<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(f)
}

#[test]
fn absurd_sizes_are_unknown_never_wrong() {
    let absurd = [
        json!(-1),
        json!("-1"),
        json!(u64::MAX),
        json!(1e19),
        json!("1e3"),
        json!(0.5),
        json!("abc"),
        json!(true),
        json!({}),
        json!(null),
    ];
    for size in absurd {
        let page: ListPage = decode("page", json!({"Next": "-1", "InfoList": [file(7, size.clone())]})).unwrap();
        assert_eq!(entry_of(&page.info_list.unwrap()[0]).size, None, "{size}");
    }
    let mut missing = file(7, json!(0));
    missing.as_object_mut().unwrap().remove("Size");
    let f = decode::<ListPage>("page", json!({"InfoList": [missing]})).unwrap().info_list.unwrap();
    assert_eq!(entry_of(&f[0]).size, None, "a missing size is unknown, not an empty file");
    let info: UserInfo =
        decode("user info", json!({"SpaceUsed": -5, "SpacePermanent": u64::MAX, "SpaceTemp": "x"})).unwrap();
    assert_eq!((info.space_used, info.space_permanent, info.space_temp), (0, 0, 0));
}

#[test]
fn a_missing_data_is_an_empty_page() {
    let data = decode_envelope(200, &Default::default(), br#"{"code":0,"message":"ok"}"#, 0).unwrap().unwrap();
    let page: ListPage = super::client::decode_data("/b/api/file/list/new", data).unwrap();
    assert!(page.info_list.is_none() && page.next.is_empty());
    let err = super::client::decode_data::<ListPage>("/b/api/file/list/new", json!(7)).unwrap_err();
    assert!(err.to_string().contains("123pan /b/api/file/list/new: .: invalid type: integer `7`"), "{err}");
}

#[test]
fn wrong_types_are_errors_that_name_the_field() {
    let err = decode::<ListPage>("page", json!({"InfoList": [file(1, json!(1)), {"FileName": "no id"}]})).unwrap_err();
    assert!(err.to_string().contains("page: InfoList[1]: missing field `FileId`"), "{err}");
    let err = decode::<ListPage>("page", json!({"InfoList": [{"FileId": "x1"}]})).unwrap_err();
    assert!(err.to_string().contains("page: InfoList[0].FileId: expected a number, found \"x1\""), "{err}");
    let err = decode::<ListPage>("page", json!({"InfoList": [{"FileId": 1, "FileName": ["a"]}]})).unwrap_err();
    assert!(err.to_string().contains("page: InfoList[0].FileName: invalid type: sequence"), "{err}");
}

#[test]
fn pages_that_never_end_are_an_error() {
    let fetch = |page: u32| async move {
        decode::<ListPage>("page", json!({"Next": page.to_string(), "InfoList": [file(i64::from(page), json!(1))]}))
    };
    let err = block_on(list_all(fetch, "42")).unwrap_err();
    assert!(err.to_string().contains("folder \"42\" did not end after 10000 pages"), "{err}");
}

#[test]
fn a_page_served_twice_lists_its_files_once() {
    // Page 2 repeats page 1 (offset paging shifted): same FileIds, shown once each.
    let fetch = |page: u32| async move {
        let (files, next) = match page {
            1 | 2 => (vec![file(1, json!(1)), file(2, json!(2))], page.to_string()),
            _ => (vec![file(3, json!(3))], "-1".to_string()),
        };
        decode::<ListPage>("page", json!({"Next": next, "InfoList": files}))
    };
    let entries = block_on(list_all(fetch, "0")).unwrap();
    let ids: Vec<_> = entries.iter().map(|e| e.id.as_str()).collect();
    assert_eq!(ids, ["1", "2", "3"]);
}

const KEYS: &[&str] = &[
    "code",
    "message",
    "msg",
    "data",
    "info",
    "status",
    "token",
    "Next",
    "next",
    "Total",
    "total",
    "InfoList",
    "infoList",
    "FileId",
    "FileID",
    "fileId",
    "FileName",
    "fileName",
    "Type",
    "type",
    "Size",
    "size",
    "Etag",
    "etag",
    "S3KeyFlag",
    "UpdateAt",
    "updateAt",
    "SpaceUsed",
    "SpacePermanent",
    "SpaceTemp",
    "DownloadUrl",
    "DownloadURL",
    "redirect_url",
];

/// Decode `v` as `T`: a value goes to `then`; an error must say what and where.
fn check<T: DeserializeOwned>(v: &Value, then: impl FnOnce(T) -> Result<()>) {
    match decode::<T>("answer", v.clone()) {
        Ok(t) => drop(then(t)),
        Err(e) => assert!(e.to_string().starts_with("invalid response: answer: "), "{e}"),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(crate::fuzz::cases(400)))]

    #[test]
    fn fuzz_pan123_json(v in prop_oneof![crate::fuzz::json(KEYS), crate::fuzz::json_object(KEYS)]) {
        check::<ListPage>(&v, |p| {
            for f in p.info_list.unwrap_or_default() {
                let e = entry_of(&f);
                assert!(e.size.is_none_or(|s| s <= i64::MAX as u64));
                FileRef::of(&e)?;
            }
            Ok(())
        });
        check::<Envelope>(&v, |_| Ok(()));
        check::<UserInfo>(&v, |_| Ok(()));
        check::<DownloadInfo>(&v, |_| Ok(()));
        check::<Redirect>(&v, |_| Ok(()));
        check::<LoginData>(&v, |_| Ok(()));
        let bytes = serde_json::to_vec(&v).unwrap();
        for status in [200, 401, 429, 503] {
            let _ = decode_envelope(status, &Default::default(), &bytes, 0);
        }
    }

    #[test]
    fn fuzz_pan123_envelope_bytes(bytes in prop::collection::vec(any::<u8>(), 0..200), status in 100u16..600) {
        let _ = decode_envelope(status, &Default::default(), &bytes, 0);
        let mut headers = reqwest::header::HeaderMap::new();
        if let Ok(location) = reqwest::header::HeaderValue::from_bytes(&bytes) {
            headers.insert(reqwest::header::LOCATION, location);
        }
        let _ = super::hop::final_url("https://download.example/a", status, &headers, &bytes);
    }
}
