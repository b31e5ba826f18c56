use super::api::{File, FileList};
use super::*;

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
    let files = rt
        .block_on(collect_pages(|token| {
            asked.lock().unwrap().push(token.clone());
            let mut p = pages.lock().unwrap();
            let i = p.iter().position(|(t, _)| *t == token).expect("asked for an unknown page");
            let (_, list) = p.remove(i);
            async move { Ok(list) }
        }))
        .unwrap();
    (files.into_iter().map(|f| f.name).collect(), asked.into_inner().unwrap())
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
    let d: File = serde_json::from_value(serde_json::json!({"kind": "drive#folder", "id": "VD", "name": "M", "size": "0"})).unwrap();
    assert!(PikPak::entry(&d).is_dir);
}
