//! The examples of pan123-protocol.md §4.2, and our deliberate differences.

use super::*;

const NOW: i64 = 1_750_000_000;

const EXAMPLE: &str = "Movies:
  1073741824:1700000000:https://vip.123pan.cn/1814435971/movies/a.mp4
  Extras:
    https://vip.123pan.cn/1814435971/movies/%E8%8A%B1%E7%B5%AE.mkv
  2048:https://vip.123pan.cn/1814435971/movies/b.srt
https://vip.123pan.cn/1814435971/readme.txt
";

fn names(tree: &Tree, path: &str) -> Vec<String> {
    let node = tree.get(path).unwrap_or_else(|| panic!("no {path}"));
    tree.children(node).map(|n| n.name().into_owned()).collect()
}

fn file(tree: &Tree, path: &str) -> FileInfo {
    tree.get(path).unwrap_or_else(|| panic!("no {path}")).file().unwrap()
}

#[track_caller]
fn parse_err(text: &str) -> ParseError {
    parse(text, NOW).expect_err("expected a parse error")
}

#[test]
fn the_example_tree() {
    let t = parse(EXAMPLE, NOW).unwrap();
    assert!(t.warnings.is_empty());
    assert_eq!(t.root().path(), "/");
    assert!(t.root().is_dir());
    assert_eq!(names(&t, "/"), ["Movies", "readme.txt"]);
    assert_eq!(names(&t, "/Movies"), ["a.mp4", "Extras", "b.srt"]);
    assert_eq!(names(&t, "/Movies/Extras"), ["花絮.mkv"]);

    let movies = t.get("/Movies").unwrap();
    assert!(movies.is_dir());
    assert_eq!(movies.line(), 1);
    assert_eq!(
        file(&t, "/Movies/a.mp4"),
        FileInfo {
            url: "https://vip.123pan.cn/1814435971/movies/a.mp4".into(),
            size: Some(1073741824),
            mtime: 1700000000,
        }
    );
    // DIFFERENCE (a): no info → unknown size (OpenList: 0), mtime 0.
    assert_eq!(
        file(&t, "/Movies/Extras/花絮.mkv"),
        FileInfo { url: "https://vip.123pan.cn/1814435971/movies/%E8%8A%B1%E7%B5%AE.mkv".into(), size: None, mtime: 0 }
    );
    assert_eq!(t.get("/Movies/Extras/花絮.mkv").unwrap().line(), 4);
    // Size only → mtime is the parse time.
    let b = file(&t, "/Movies/b.srt");
    assert_eq!((b.size, b.mtime), (Some(2048), NOW));
    let readme = file(&t, "/readme.txt");
    assert_eq!((readme.size, readme.mtime), (None, 0));
    assert_eq!(t.get("/readme.txt").unwrap().path(), "/readme.txt");
    assert_eq!(t.files().count(), 4);
    // Lookups are exact: a trailing slash finds nothing, as in OpenList.
    assert!(t.get("/Movies/").is_none());
    assert!(t.get("/Nope").is_none());
}

#[test]
fn odd_indent_fails_even_on_blank_lines() {
    let e = parse_err("Movies:\n   https://h/a.mp4\n");
    assert_eq!(e, ParseError { line: 2, message: "the line '   https://h/a.mp4' is not a multiple of 2".into() });
    let e = parse_err("Movies:\n  https://h/a.mp4\n \n");
    assert_eq!(e, ParseError { line: 3, message: "the line ' ' is not a multiple of 2".into() });
    assert_eq!(e.to_string(), "line 3: the line ' ' is not a multiple of 2");
    // Even blank lines of two spaces are skipped.
    parse("Movies:\n  \n  https://h/a.mp4\n\n", NOW).unwrap();
}

#[test]
fn tabs_do_not_indent_and_whitespace_is_trimmed() {
    // A tab is not indentation: the line is at level 0 after trimming, which closes `A`; the
    // next line's two spaces then make it a child of the root, since files are never parents.
    let t = parse("A:\n\thttps://h/x.mp4\r\n  https://h/y.mp4  \r\n", NOW).unwrap();
    assert_eq!(names(&t, "/"), ["A", "x.mp4", "y.mp4"]);
    assert!(names(&t, "/A").is_empty());
    let t = parse("A:\r\n  https://h/z.mp4\t\r\n", NOW).unwrap();
    assert_eq!(names(&t, "/A"), ["z.mp4"]);
}

#[test]
fn folders_lose_exactly_one_colon() {
    let t = parse("a::\n  https://h/x\n", NOW).unwrap();
    assert_eq!(names(&t, "/"), ["a:"]);
    assert_eq!(names(&t, "/a:"), ["x"]);
}

#[test]
fn indentation_jumps_and_dedents() {
    // A deeper jump is still a child of the top of the stack; dedent pops as many levels.
    let t = parse("A:\n  B:\n      https://h/deep\n  https://h/inA\nhttps://h/top\n", NOW).unwrap();
    assert_eq!(names(&t, "/A"), ["B", "inA"]);
    assert_eq!(names(&t, "/A/B"), ["deep"]);
    assert_eq!(names(&t, "/"), ["A", "top"]);
    // Lines indented under a file belong to the file's folder.
    let t = parse("A:\n  https://h/f\n    https://h/g\n", NOW).unwrap();
    assert_eq!(names(&t, "/A"), ["f", "g"]);
}

#[test]
fn a_url_line_ending_in_a_colon_is_a_folder_and_fails_its_name() {
    // OpenList makes a folder called `https://h/x`; DIFFERENCE (e): a `/` in a name is an error.
    let e = parse_err("https://h/x:\n");
    assert_eq!(e.line, 1);
    assert!(e.message.contains("contains '/'"), "{e}");
}

#[test]
fn url_is_required() {
    let e = parse_err("A:\n  1024:ftp://h/x\n");
    assert_eq!(e.line, 2);
    assert!(e.message.starts_with("url is required for file"), "{e}");
    let e = parse_err("name1:url1");
    assert!(e.message.starts_with("url is required for file"), "{e}");
}

#[test]
fn names_are_not_supported_in_the_info() {
    // The source comment's `name1:url1` idea: `name1` is not an integer size.
    let e = parse_err("A:\n  movie:https://h/x.mp4\n");
    assert_eq!(
        e,
        ParseError { line: 2, message: "invalid file size 'movie': must be an integer number of bytes".into() }
    );
}

#[test]
fn info_must_end_with_a_colon() {
    let e = parse_err("1024https://h/x\n");
    assert_eq!(e.line, 1);
    assert!(e.message.starts_with("file info must end with ':'"), "{e}");
    // `http://` is searched first, so an https URL with `http://` in its query splits there.
    let e = parse_err("https://a/x?u=http://b/y\n");
    assert!(e.message.starts_with("file info must end with ':'"), "{e}");
    assert!(e.message.contains("'https://a/x?u='"), "{e}");
}

#[test]
fn empty_info_fails() {
    let e = parse_err("\n:https://h/x\n");
    assert_eq!(e.line, 2);
    assert!(e.message.starts_with("file name can't be empty"), "{e}");
}

#[test]
fn size_and_mtime_must_be_integers() {
    let e = parse_err("1k:https://h/x\n");
    assert!(e.message.contains("invalid file size '1k'"), "{e}");
    let e = parse_err("10:yesterday:https://h/x\n");
    assert_eq!(
        e,
        ParseError { line: 1, message: "invalid modification time 'yesterday': must be Unix seconds".into() }
    );
    // DIFFERENCE (f): a negative size is refused.
    let e = parse_err("-1:https://h/x\n");
    assert!(e.message.contains("must not be negative"), "{e}");
    // Parts after the mtime are ignored; `+` signs parse as in Go.
    let t = parse("+10:-5:junk:more:https://h/x\n", NOW).unwrap();
    let f = file(&t, "/x");
    assert_eq!((f.size, f.mtime), (Some(10), -5));
}

#[test]
fn names_from_urls() {
    let t = parse(
        "https://h/a%2Bb+c.mp4\n\
         https://h/dir/trailing///\n\
         https://h/100%zz.mkv\n\
         https://h/sp%20ace.txt\n\
         https://h/q.mp4?x=1&y=a/b\n\
         https://h/frag.mp4#t=10\n\
         https://h/%FF%FE.bin\n",
        NOW,
    )
    .unwrap();
    assert_eq!(
        names(&t, "/"),
        [
            "a+b+c.mp4",  // `+` stays `+`
            "trailing",   // trailing slashes ignored
            "100%zz.mkv", // invalid escape keeps the raw name
            "sp ace.txt",
            "q.mp4",      // DIFFERENCE (c): no query (OpenList: `b`, from the query's `/`)
            "frag.mp4",   // DIFFERENCE (c): no fragment
            "%FF%FE.bin", // DIFFERENCE (g): not UTF-8 once decoded
        ]
    );
    assert_eq!(file(&t, "/q.mp4").url, "https://h/q.mp4?x=1&y=a/b");
    // A bare host is named after the host (Go path.Base).
    let t = parse("https://vip.123pan.cn\n", NOW).unwrap();
    assert_eq!(names(&t, "/"), ["vip.123pan.cn"]);
}

#[test]
fn file_names_a_folder_cannot_hold_are_kept_and_paths_show_them_escaped() {
    let t =
        parse("https://h/a%2Fb.mp4\nhttps://h/x/..\nhttps://h/x/.\nhttps://h/a%00b\nhttps://h/%2E%2E\n", NOW).unwrap();
    assert_eq!(names(&t, "/"), ["a/b.mp4", "..", ".", "a\0b", ".. (2)"]);
    assert_eq!(file(&t, "/a／b.mp4").url, "https://h/a%2Fb.mp4");
    assert_eq!(file(&t, "/．．").url, "https://h/x/..");
    assert_eq!(file(&t, "/．").url, "https://h/x/.");
    assert_eq!(file(&t, "/a␀b").url, "https://h/a%00b");
    assert_eq!(file(&t, "/.. (2)").url, "https://h/%2E%2E");
}

#[test]
fn impossible_folder_names_are_errors() {
    for (text, fragment) in [
        (":\n", "the name is empty"),
        ("..:\n", "'..' cannot be used"),
        ("A:\n  a\0b:\n", "NUL"),
        ("A:\n  .:\n", "'.' cannot be used"),
        ("a/b:\n", "contains '/'"),
    ] {
        let e = parse_err(text);
        assert!(e.message.contains(fragment), "{text:?}: {e}");
        assert_eq!(e.line, text.lines().count(), "{text:?}");
    }
}

#[test]
fn duplicates_are_renamed_not_hidden() {
    let t = parse(
        "A:\n\
         \x20 1:https://h/1/a.mp4\n\
         \x20 2:https://h/2/a.mp4\n\
         \x20 3:https://h/3/a (2).mp4\n\
         \x20 4:https://h/4/a.mp4\n\
         \x20 https://h/.hidden\n\
         \x20 https://h/x/.hidden\n\
         A:\n\
         \x20 https://h/b\n",
        NOW,
    )
    .unwrap();
    assert_eq!(names(&t, "/"), ["A", "A (2)"]);
    assert_eq!(names(&t, "/A"), ["a.mp4", "a (3).mp4", "a (2).mp4", "a (4).mp4", ".hidden", ".hidden (2)"]);
    assert_eq!(file(&t, "/A/a.mp4").size, Some(1));
    assert_eq!(file(&t, "/A/a (3).mp4").size, Some(2));
    assert_eq!(file(&t, "/A/a (2).mp4").size, Some(3));
    assert_eq!(file(&t, "/A/a (4).mp4").size, Some(4));
    assert_eq!(names(&t, "/A (2)"), ["b"]);
    assert_eq!(t.get("/A (2)/b").unwrap().path(), "/A (2)/b");
    assert_eq!(t.warnings.len(), 4);
    assert_eq!(t.warnings[3], "line 8: 'A' is already used in this folder; shown as 'A (2)'");
    // In line order.
    assert_eq!(t.warnings[0], "line 3: 'a.mp4' is already used in this folder; shown as 'a (3).mp4'");
}

#[test]
fn empty_text_is_an_empty_root() {
    let t = parse("", NOW).unwrap();
    assert!(names(&t, "/").is_empty());
    let t = parse("\n\n  \n", NOW).unwrap();
    assert!(names(&t, "/").is_empty());
}

/// The fuzz target of the tree text (see `crate::fuzz`): lines assembled from the pieces the
/// format is made of, at random indents, plus arbitrary text. Whatever the text, `parse`
/// answers a tree whose paths are unique and whose names a folder can hold, or an error that
/// names a line of the text.
mod fuzz {
    use proptest::prelude::*;

    use super::super::parse;
    use super::NOW;

    fn line() -> impl Strategy<Value = String> {
        let info = prop_oneof![Just(String::new()), "-?[0-9]{1,21}:", "[0-9]{1,12}:-?[0-9]{1,21}:", "[0-9a-z:]{0,6}",];
        const ODD: &[&str] = &["%2F", "%00", "%2E%2E", "%E8%8A%B1", "%FF", "%", ".", ".."];
        let segment = prop_oneof!["[a-z.]{1,6}", prop::sample::select(ODD).prop_map(String::from)];
        let url =
            (prop_oneof![Just("http://"), Just("https://")], prop::collection::vec(segment, 0..4), "[?#]?[a-z=/]{0,6}")
                .prop_map(|(scheme, parts, tail)| format!("{scheme}h/{}{tail}", parts.concat()));
        let body = prop_oneof![
            3 => (info, url).prop_map(|(i, u)| format!("{i}{u}")),
            2 => "[a-zA-Z. /花]{0,8}:",
            1 => any::<String>(),
        ];
        (0usize..7, body, prop_oneof![Just(""), Just("\r"), Just(" ")])
            .prop_map(|(indent, b, end)| format!("{}{b}{end}", " ".repeat(indent)))
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(crate::fuzz::cases(1000)))]

        #[test]
        fn fuzz_tree_text(lines in prop::collection::vec(line(), 0..12)) {
            let text = lines.join("\n");
            match parse(&text, NOW) {
                Ok(tree) => {
                    let mut todo = vec![tree.root()];
                    let mut paths = std::collections::HashSet::new();
                    while let Some(node) = todo.pop() {
                        let path = node.path();
                        prop_assert!(paths.insert(path.clone()), "{} twice", path);
                        prop_assert!(tree.get(&path).unwrap() == node);
                        let mut names = std::collections::HashSet::new();
                        for child in tree.children(node) {
                            let name = child.name().into_owned();
                            prop_assert!(names.insert(name.clone()), "{:?} twice", name);
                            let usable = !name.is_empty() && !name.contains(['/', '\0']) && name != "." && name != "..";
                            prop_assert!(usable || !child.is_dir(), "folder {:?}", name);
                            todo.push(child);
                        }
                    }
                }
                Err(e) => {
                    prop_assert!(e.line >= 1 && e.line <= text.split('\n').count(), "{e}");
                    prop_assert!(!e.message.is_empty());
                }
            }
        }
    }
}
