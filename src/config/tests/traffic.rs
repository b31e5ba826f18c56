//! `traffic_budget` and `traffic_period`, and the sizes they are written in.

use super::*;

fn storage_with(keys: &str) -> String {
    format!("state_dir = \"/var/lib/panmount\"\n{}{keys}\n", link_storage("/a"))
}

#[test]
fn a_budget_and_its_period() {
    let c = parse(&storage_with("traffic_budget = \"10GiB\"\ntraffic_period = \"day\"")).unwrap();
    assert_eq!(c.storages[0].traffic_budget, Some(10 << 30));
    assert_eq!(c.storages[0].traffic_period, TrafficPeriod::Day);
    // Bytes as an integer, and the month by default.
    let c = parse(&storage_with("traffic_budget = 5000000")).unwrap();
    assert_eq!(c.storages[0].traffic_budget, Some(5_000_000));
    assert_eq!(c.storages[0].traffic_period, TrafficPeriod::Month);
    // No budget: unmetered, whatever the period says.
    let c = parse(&link_storage("/a")).unwrap();
    assert_eq!((c.storages[0].traffic_budget, c.storages[0].traffic_period), (None, TrafficPeriod::Month));
    // Not a driver option: the driver never sees it.
    let c = parse(&storage_with("traffic_budget = \"5MiB\"")).unwrap();
    assert!(!c.storages[0].options.values.contains_key("traffic_budget"));
}

#[test]
fn a_budget_needs_state_dir() {
    let text = format!("{}traffic_budget = \"1G\"\n", link_storage("/a"));
    assert_err(&err(&text), Some("storage[1].traffic_budget"), Some(5), "`state_dir`");
    // The second storage's budget is the one named.
    let text = format!("{}{}traffic_budget = \"1G\"\n", link_storage("/a"), link_storage("/b"));
    assert_err(&err(&text), Some("storage[2].traffic_budget"), Some(9), "set `state_dir`");
}

#[test]
fn bad_values_name_the_key_and_what_is_valid() {
    let budget = "storage[1].traffic_budget";
    let period = "storage[1].traffic_period";
    for (keys, key, line, fragment) in [
        ("traffic_budget = \"lots\"", budget, 6, "\"10GiB\""),
        ("traffic_budget = \"0\"", budget, 6, "must be more than 0"),
        ("traffic_budget = true", budget, 6, "expected a size"),
        (
            "traffic_budget = \"1G\"\ntraffic_period = \"week\"",
            period,
            7,
            "\"month\" (from 00:00 UTC on the 1st) or \"day\"",
        ),
        ("traffic_period = 30", period, 6, "expected a string"),
        // A misspelt key is not taken for a driver option silently; the message lists them.
        (
            "trafic_budget = \"1G\"",
            "storage[1].trafic_budget",
            6,
            "keys of any storage: path, driver, read_only, traffic_budget, traffic_period",
        ),
    ] {
        assert_err(&err(&storage_with(keys)), Some(key), Some(line), fragment);
    }
}

#[test]
fn sizes_take_iec_and_short_units() {
    for (text, bytes) in [
        ("10GiB", 10u64 << 30),
        ("10G", 10 << 30),
        ("10GB", 10 << 30),
        ("10 gib", 10 << 30),
        ("500M", 500 << 20),
        ("5MiB", 5 << 20),
        ("512KiB", 512 << 10),
        ("2TiB", 2 << 40),
        ("42B", 42),
        ("42", 42),
    ] {
        assert_eq!(parse_size(text), Ok(bytes), "{text}");
    }
    for text in ["", "GiB", "10IB", "10XiB", "1.5G", "-1G", "99999999999T"] {
        let e = parse_size(text).unwrap_err();
        assert!(e.contains("\"10GiB\""), "{text}: {e}");
    }
    assert_eq!(format_size(1536), "1.5 KiB");
    assert_eq!(format_size(10 << 30), "10.0 GiB");
}
