//! Unit tests of the OpenList import: the driver tables against panmount's drivers, the three
//! export shapes, quoting, comments, defaults and paths. The CLI tests cover the binary.

use std::path::Path;

use serde_json::{Value, json};

use super::mapping::DRIVERS as MAPS;
use super::{Import, convert};
use crate::config::Config;

fn import(doc: &Value) -> Import {
    convert(doc.to_string().as_bytes(), Path::new("export.json")).unwrap()
}

/// The converted text as panmount reads it, with a mount point added.
fn load(import: &Import) -> Config {
    let text = format!("mountpoint = \"/mnt\"\n{}", import.toml);
    Config::parse(&text, Path::new("out.toml")).unwrap_or_else(|e| panic!("{e}\n{text}"))
}

fn storage(path: &str, driver: &str, addition: Value) -> Value {
    json!({"id": 1, "mount_path": path, "driver": driver, "addition": addition.to_string(), "disabled": false})
}

fn option(config: &Config, i: usize, key: &str) -> Option<toml::Value> {
    config.storages[i].options.values.get(key).map(|v| v.value.clone())
}

#[test]
fn every_target_is_an_option_of_its_panmount_driver() {
    for map in MAPS {
        let (_, valid) = crate::drivers::DRIVERS.iter().find(|(n, _)| *n == map.panmount).unwrap();
        for opt in map.options {
            assert!(valid.iter().any(|o| o.name == opt.to), "{} -> {}.{}", map.openlist, map.panmount, opt.to);
        }
        for need in map.needs.iter().flat_map(|n| n.iter()) {
            assert!(map.options.iter().any(|o| o.to == *need), "{need}");
        }
    }
}

#[test]
fn the_three_shapes_and_both_addition_forms_give_the_same_output() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/openlist");
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let doc: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        let list = doc.get("storages").or(doc.pointer("/data/content")).unwrap_or(&doc).clone();
        let objects: Vec<Value> = list.as_array().unwrap().iter().map(addition_as_object).collect();
        let want = import(&list).toml;
        for shape in [
            json!({"code": 200, "message": "success", "data": {"content": list, "total": 1}}),
            json!({"settings": [], "storages": list}),
            Value::Array(objects),
        ] {
            assert_eq!(import(&shape).toml, want, "{}", path.display());
        }
    }
}

fn addition_as_object(storage: &Value) -> Value {
    let mut s = storage.clone();
    if let Some(Ok(obj)) = s["addition"].as_str().map(serde_json::from_str::<Value>) {
        s["addition"] = obj;
    }
    s
}

#[test]
fn values_round_trip_exactly_through_toml() {
    let nasty = "q\"uo'te \\ back\\\\slash\ttab\r\nline\u{1}ctl\u{7f}del ünï 🎬 \"\"\" '''";
    let doc = json!([storage("/a", "123Pan", json!({"username": nasty, "password": "${HOME}x", "platform": "web"}))]);
    let out = import(&doc);
    let config = load(&out);
    assert_eq!(option(&config, 0, "username"), Some(toml::Value::String(nasty.into())));
    assert_eq!(option(&config, 0, "password"), Some(toml::Value::String("${HOME}x".into())));
    assert_eq!(option(&config, 0, "platform"), None, "the default is left out");
    // A whole-value ${NAME} would be read from the environment: the user is told.
    let env_like = import(&json!([storage("/a", "123Pan", json!({"username": "u", "password": "${PW}"}))]));
    assert!(env_like.notes.iter().any(|n| n.contains("`password` looks like ${NAME}")), "{:?}", env_like.notes);
}

#[test]
fn text_from_the_export_cannot_leave_its_comment() {
    let evil = "x\n[[storage]]\npath = \"/evil\"\ndriver = \"123pan_link\"\norigin_urls = \"http://e/\"\n\u{1b}[31m";
    let mut doc = storage("/ok", "123PanLink", json!({"origin_urls": "http://h/a.mp4"}));
    doc["remark"] = json!(evil);
    let out = import(&json!([doc, storage("/bad", evil, json!({}))]));
    let config = load(&out);
    assert_eq!(config.storages.len(), 1, "{}", out.toml);
    assert!(out.notes.iter().all(|n| !n.contains('\n') && !n.contains('\u{1b}')), "{:?}", out.notes);
}

#[test]
fn defaults_are_left_out_and_other_values_kept() {
    let doc = json!([
        storage(
            "/p",
            "PikPak",
            json!({"username": "u", "password": "p", "platform": "web", "root_folder_id": "",
            "disable_media_link": false, "refresh_token": "", "captcha_token": null})
        ),
        storage("/s", "123PanShare", json!({"sharekey": "k", "root_folder_id": 0, "accesstoken": "t"})),
        storage(
            "/l",
            "123PanLink",
            json!({"origin_urls": "http://h/a", "uid": "42", "valid_duration": 30, "private_key": ""})
        ),
        storage("/ps", "PikPakShare", json!({"share_id": "s", "use_transcoding_address": "false", "platform": "pc"})),
    ]);
    let config = load(&import(&doc));
    let keys = |i: usize| config.storages[i].options.values.keys().cloned().collect::<Vec<_>>();
    assert_eq!(keys(0), ["disable_media_link", "password", "username"]);
    assert_eq!(option(&config, 0, "disable_media_link"), Some(toml::Value::Boolean(false)));
    assert_eq!(keys(1), ["access_token", "share_key"], "root 0 is 123pan's default");
    assert_eq!(keys(2), ["origin_urls", "uid"]);
    assert_eq!(option(&config, 2, "uid"), Some(toml::Value::Integer(42)));
    assert_eq!(keys(3), ["platform", "share_id"]);
}

#[test]
fn unreadable_values_are_left_out_with_a_note_and_required_ones_skip_the_storage() {
    let doc = json!([
        storage("/p", "PikPak", json!({"refresh_token": "r", "disable_media_link": "maybe", "username": ["a"]})),
        storage("/q", "PikPak", json!({"username": "u"})),
    ]);
    let out = import(&doc);
    assert_eq!(out.converted, 1);
    let config = load(&out);
    assert_eq!(config.storages[0].options.values.keys().collect::<Vec<_>>(), ["refresh_token"]);
    let notes = out.notes.join("\n");
    assert!(notes.contains("`disable_media_link` is a string, not true or false"), "{notes}");
    assert!(notes.contains("`username` is an array"), "{notes}");
    assert!(notes.contains("/q") && notes.contains("missing username and password, or refresh_token"), "{notes}");
}

#[test]
fn paths_are_normalised_and_never_overlap() {
    let link = |p: &str| storage(p, "123PanLink", json!({"origin_urls": "http://h/a"}));
    let out = import(&json!([link("/a/"), link("/a//b"), link("/a"), link("/c/./d"), link("/"), link("/e")]));
    let config = load(&out);
    let paths: Vec<_> = config.storages.iter().map(|s| s.path.as_str()).collect();
    assert_eq!(paths, ["/a", "/e"]);
    assert_eq!(out.notes.len(), 4, "{:?}", out.notes);
    let only_root = import(&json!([link("/")]));
    assert_eq!(load(&only_root).storages[0].path, "/");
}

#[test]
fn exports_that_are_not_exports_are_errors_naming_the_file() {
    for (text, needle) in [
        ("", "not a JSON document"),
        ("{\"code\":500,\"message\":\"boom\",\"data\":null}", "code 500"),
        ("{\"data\":{\"content\":{}}}", "\"data.content\" is an object"),
        ("\"x\"", "found a string"),
        ("{\"encrypted\":\"U2FsdGVk\",\"storages\":[]}", "encrypted with a password"),
    ] {
        let err = convert(text.as_bytes(), Path::new("e.json")).unwrap_err();
        let msg = err.to_string();
        assert!(msg.starts_with("e.json: ") && msg.contains(needle), "{text}: {msg}");
    }
    let empty = convert(b"{\"code\":200,\"data\":{\"content\":null,\"total\":0}}", Path::new("e.json")).unwrap();
    assert_eq!((empty.total, empty.converted), (0, 0));
    assert!(empty.report().is_err(), "nothing converted fails");
    let one = json!({"code": 200, "data": storage("/one", "123 pan link", json!({"origin_urls": "http://h/a"}))});
    assert_eq!(import(&one).converted, 1, "storage/get's answer, a driver name spelt loosely");
}
