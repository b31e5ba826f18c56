//! The names mapping: examples, and property tests (the fuzz equivalent: see `crate::fuzz`)
//! that it is reversible, injective within a folder, valid for the kernel and independent of
//! the order a provider lists a folder in.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, SystemTime};

use proptest::prelude::*;

use super::*;
use crate::cache::meta::Listing;

fn e(id: &str, name: &str, is_dir: bool, mtime: u64) -> Entry {
    Entry {
        id: id.into(),
        name: name.into(),
        is_dir,
        size: Some(1),
        mtime: SystemTime::UNIX_EPOCH + Duration::from_secs(mtime),
        version: String::new(),
    }
}

fn shown(entries: &[Entry]) -> Vec<String> {
    shown_names(entries)
}

/// The entry shown as `name`, found the way the core finds it: through a listing's name index.
fn find(entries: &[Entry], name: &str) -> Option<Entry> {
    Listing::new(entries.to_vec()).named(name).map(|e| e.to_entry())
}

#[test]
fn unusable_names_get_rclone_look_alikes() {
    for (remote, disk) in [
        ("x/y", "x／y"),
        ("a\0b", "a␀b"),
        ("", "‛"),
        (".", "．"),
        ("..", "．．"),
        ("...", "..."),
        (".hidden", ".hidden"),
        ("a／b", "a‛／b"),
        ("a␀", "a‛␀"),
        ("it‛s", "it‛‛s"),
        ("‛", "‛‛"),
        ("．", "‛．"),
        ("．．", "‛．．"),
        ("．．．", "．．．"),
        ("_", "_"),
        ("花絮.mkv", "花絮.mkv"),
    ] {
        assert_eq!(escape(remote), disk, "{remote:?}");
        assert_eq!(unescape(disk).as_deref(), Some(remote), "{disk:?}");
    }
    // Names `escape` never produces have no remote name.
    for not_shown in ["‛a", "a‛", "‛‛‛", ".", "..", "/", "‛．．．"] {
        assert_eq!(unescape(not_shown), None, "{not_shown:?}");
    }
}

#[test]
fn duplicates_are_numbered_oldest_first() {
    let v = vec![
        e("3", "a.mp4", false, 30),
        e("1", "a.mp4", false, 10),
        e("0", "a (2).mp4", false, 50),
        e("2", "a.mp4", false, 20),
        e("d2", "D", true, 5),
        e("d1", "D", true, 5),
        e("s", "x/y", false, 0),
        e("x", "x／y", false, 0),
        e("p", "..", false, 0),
        e("q", "", false, 0),
        e("r", "‛", false, 0),
    ];
    assert_eq!(
        shown(&v),
        ["a (4).mp4", "a.mp4", "a (2).mp4", "a (3).mp4", "D (2)", "D", "x／y", "x‛／y", "．．", "‛", "‛‛"]
    );
}

#[test]
fn long_names_are_cut_stably_and_stay_distinct() {
    let long_a = format!("{}A.mkv", "花".repeat(100));
    let long_b = format!("{}B.mkv", "花".repeat(100));
    let v = vec![e("1", &long_a, false, 0), e("2", &long_b, false, 0), e("3", &long_a, false, 0)];
    let names = shown(&v);
    for n in &names {
        assert!(n.len() <= MAX_NAME, "{} bytes", n.len());
        assert!(n.ends_with(".mkv"), "{n}");
    }
    assert_ne!(names[0], names[1]);
    assert_ne!(names[0], names[2]);
    assert_eq!(shown(&[e("1", &long_a, false, 0)])[0], names[0], "stable across listings");
    assert_eq!(find(&v, &names[2]).map(|x| x.id), Some("3".to_string()));
}

#[test]
fn a_duplicate_of_a_name_of_exactly_255_bytes_still_fits() {
    let name = format!("{}.mp4", "x".repeat(MAX_NAME - 4));
    let v = vec![e("1", &name, false, 0), e("2", &name, false, 1)];
    let names = shown(&v);
    assert_eq!(names[0], name);
    assert!(names[1].len() <= MAX_NAME && names[1].ends_with(").mp4"), "{}", names[1]);
}

/// Names built from the pieces that break naive mappings: look-alikes, the quote, dots,
/// numbering suffixes, and runs long enough to pass 255 bytes.
fn hostile_name() -> impl Strategy<Value = String> {
    const PIECES: &[&str] = &["/", "\0", ".", "..", "／", "␀", "‛", "．", "_", " (2)", ".mp4", "~"];
    let piece = prop_oneof![
        prop::sample::select(PIECES).prop_map(String::from),
        "[a-c花]{1,3}",
        Just("x".repeat(120)),
        Just("花".repeat(45)),
        any::<String>(),
    ];
    prop::collection::vec(piece, 0..5).prop_map(|p| p.concat())
}

/// A folder listing: unique ids, names drawn from a small set so that duplicates are common.
fn listing() -> impl Strategy<Value = Vec<Entry>> {
    prop::collection::vec(hostile_name(), 1..6).prop_flat_map(|pool| {
        let n = pool.len();
        prop::collection::vec((0..n, any::<bool>(), 0u64..3), 0..12).prop_map(move |picks| {
            picks.iter().enumerate().map(|(i, &(k, dir, t))| e(&format!("id{i}"), &pool[k], dir, t)).collect()
        })
    })
}

fn valid_for_the_kernel(name: &str) -> bool {
    !name.is_empty() && name != "." && name != ".." && !name.contains(['/', '\0']) && name.len() <= MAX_NAME
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(crate::fuzz::cases(2000)))]

    #[test]
    fn escape_is_reversible(name in hostile_name()) {
        prop_assert_eq!(unescape(&escape(&name)), Some(name));
    }

    #[test]
    fn plain_names_are_those_escape_keeps(name in hostile_name()) {
        prop_assert_eq!(is_plain(&name), escape(&name) == name, "{:?}", name);
    }

    #[test]
    fn unescape_never_panics_and_only_accepts_escaped_names(s in hostile_name()) {
        if let Some(name) = unescape(&s) {
            prop_assert_eq!(escape(&name), s);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(crate::fuzz::cases(500)))]

    #[test]
    fn folder_names_are_valid_unique_reversible_and_order_independent(v in listing(), seed in any::<u64>()) {
        let names = shown(&v);
        let listing = Listing::new(v.clone());
        prop_assert_eq!(listing.iter_shown().map(|(n, _)| n).collect::<Vec<_>>(), names.iter().map(String::as_str).collect::<Vec<_>>());
        prop_assert_eq!(listing.to_vec(), v.clone(), "the entries keep their remote names");
        let unique: HashSet<&String> = names.iter().collect();
        prop_assert_eq!(unique.len(), v.len(), "{:?}", names);
        for (i, name) in names.iter().enumerate() {
            prop_assert!(valid_for_the_kernel(name), "{:?}", name);
            prop_assert_eq!(&listing.named(name).unwrap().id, &v[i].id);
            // A name that is neither cut nor numbered is the escaped remote name.
            if name.len() < MAX_NAME - 16 && !name.contains(" (") && !name.contains('~') {
                prop_assert_eq!(unescape(name), Some(v[i].name.clone()));
            }
        }
        let by_id: HashMap<&str, &String> = v.iter().map(|x| x.id.as_str()).zip(&names).collect();
        let mut shuffled = v.clone();
        let len = shuffled.len();
        for i in 0..len {
            shuffled.swap(i, (seed as usize).wrapping_add(i * 7) % len);
        }
        for (x, name) in shuffled.iter().zip(shown(&shuffled)) {
            prop_assert_eq!(by_id[x.id.as_str()], &name);
        }
    }
}
