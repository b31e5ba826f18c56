//! The fault matrix (tests/README.md), provider rows: token, captcha and refresh-token faults,
//! rate limits, a provider outage, API error answers (any status, any JSON body), DNS failure
//! and a refused login, each through a real mount of the simulated PikPak (or 123pan, or its
//! `ls`), asserting what the reader gets (the exact bytes, the real entries, or EIO) and what
//! the recovery costs, counted by the simulator.

use crate::common;

use std::os::unix::fs::FileExt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::{Mount, Sim, assert_eio, fuse_tests_enabled, mount_stat, read_all, run, sha256, write_config};
use panmount::sim::ApiFault;
use panmount::sim::pan123::{LoginFault, PASSWORD, PHONE, Pan123Counters};
use panmount::sim::pikpak::Counters;

/// The most a read that fails for good may take (see faults_cdn.rs).
const EIO_WITHIN: Duration = Duration::from_secs(30);

fn pikpak(sim: &Sim, path: &str, extra: &str) -> String {
    let b = sim.handle().base_url();
    format!(
        "[[storage]]\npath = \"{path}\"\ndriver = \"pikpak\"\napi_base = \"{b}\"\nuser_base = \"{b}\"\n\
         username = \"alice@example.com\"\npassword = \"secret\"\n{extra}\n"
    )
}

/// A `123pan` storage at `/123`, listing at most every 20 ms (the simulator allows 10).
fn pan123(sim: &Sim) -> String {
    let b = sim.handle().base_url();
    sim.handle().pan123.update(|k| k.list_interval_ms = 10);
    format!(
        "[[storage]]\npath = \"/123\"\ndriver = \"123pan\"\nusername = \"{PHONE}\"\npassword = \"{PASSWORD}\"\n\
         api_base = \"{b}\"\nlogin_base = \"{b}\"\nlist_interval_ms = 20\n"
    )
}

fn counter(sim: &Sim, f: impl Fn(&Counters) -> &AtomicU64) -> u64 {
    f(&sim.handle().pikpak.counters).load(Ordering::Relaxed)
}

/// The PikPak counters a recovery may move, as one tuple to compare before and after:
/// (refused drive calls 401, refreshes, refused refreshes, signins, captcha inits, captcha
/// refusals, rate-limited calls).
fn costs(sim: &Sim) -> [u64; 7] {
    [
        counter(sim, |c| &c.unauthenticated),
        counter(sim, |c| &c.refreshes),
        counter(sim, |c| &c.refresh_refused),
        counter(sim, |c| &c.signins),
        counter(sim, |c| &c.captcha_inits),
        counter(sim, |c| &c.captcha_refused),
        counter(sim, |c| &c.rate_limited),
    ]
}

fn delta(after: [u64; 7], before: [u64; 7]) -> [u64; 7] {
    std::array::from_fn(|i| after[i] - before[i])
}

fn assert_file(sim: &Sim, mount: &Mount, storage: &str, rel: &str) {
    let got = read_all(&mount.path(&format!("{storage}{rel}"))).unwrap_or_else(|e| panic!("{storage}{rel}: {e}"));
    assert_eq!(sha256(&got), sha256(&sim.file_bytes(rel)), "{storage}{rel}");
}

#[test]
fn access_token_expiry_costs_one_refresh() {
    if !fuse_tests_enabled() {
        return;
    }
    let sim = Sim::start(false);
    let pp = &sim.handle().pikpak;
    pp.update(|k| k.access_ttl_secs = 2);
    let mount = Mount::start(&pikpak(&sim, "/pikpak", ""));
    assert_file(&sim, &mount, "/pikpak", "/Docs/readme.txt");
    pp.update(|k| k.access_ttl_secs = 7200);
    // Expired as announced (`expires_in`): refreshed ahead of the next call, nothing refused.
    std::thread::sleep(Duration::from_millis(2200));
    let before = costs(&sim);
    assert_file(&sim, &mount, "/pikpak", "/Movies/movie.srt");
    assert_eq!(delta(costs(&sim), before), [0, 1, 0, 0, 0, 0, 0], "refreshed ahead");
    // Ended early by the service: one call refused with 401, one refresh, the call again.
    pp.expire_access_tokens();
    let before = costs(&sim);
    assert_file(&sim, &mount, "/pikpak", "/Music/Album/cover.jpg");
    assert_eq!(delta(costs(&sim), before), [1, 1, 0, 0, 0, 0, 0], "refused once, refreshed once");
    assert!(mount.stop().success());
}

#[test]
fn captcha_expiry_costs_one_refusal_and_one_mint() {
    if !fuse_tests_enabled() {
        return;
    }
    let sim = Sim::start(false);
    let pp = &sim.handle().pikpak;
    pp.update(|k| k.captcha_ttl_secs = 1);
    let mount = Mount::start(&pikpak(&sim, "/pikpak", ""));
    assert_file(&sim, &mount, "/pikpak", "/Docs/readme.txt");
    pp.update(|k| k.captcha_ttl_secs = 300);
    std::thread::sleep(Duration::from_millis(1200));
    let before = costs(&sim);
    assert_file(&sim, &mount, "/pikpak", "/Movies/movie.srt");
    assert_eq!(delta(costs(&sim), before), [0, 0, 0, 0, 1, 1, 0], "refused once, minted once");
    assert!(mount.stop().success());
}

#[test]
fn refresh_token_reuse_signs_in_again_or_is_eio() {
    if !fuse_tests_enabled() {
        return;
    }
    let sim = Sim::start(false);
    let pp = &sim.handle().pikpak;
    let token = pp.issue_refresh_token();
    let token_only = pikpak(&sim, "/token", &format!("refresh_token = \"{token}\""))
        .replace("username = \"alice@example.com\"\npassword = \"secret\"\n", "");
    let mount = Mount::start(&[pikpak(&sim, "/pw", ""), token_only].concat());
    assert_file(&sim, &mount, "/pw", "/Docs/readme.txt");
    assert_file(&sim, &mount, "/token", "/Docs/readme.txt");
    // Another process refreshed with our tokens (spending them), and the access tokens died.
    pp.spend_refresh_tokens();
    pp.expire_access_tokens();
    // With a password: 401, invalid_grant, a login captcha and a signin, then the call again.
    let before = costs(&sim);
    assert_file(&sim, &mount, "/pw", "/Movies/movie.srt");
    assert_eq!(delta(costs(&sim), before), [1, 0, 1, 1, 1, 0, 0], "signed in again");
    // With a refresh token only: 401 and invalid_grant, then EIO, and the storage is down:
    // later accesses cost no request and the log says why once.
    let before = costs(&sim);
    let started = Instant::now();
    assert_eio(read_all(&mount.path("/token/Movies/movie.srt")), "spent refresh token");
    assert!(started.elapsed() < EIO_WITHIN);
    assert_eq!(delta(costs(&sim), before), [1, 0, 1, 0, 0, 0, 0]);
    let before = costs(&sim);
    assert_eio(std::fs::read_dir(mount.path("/token/Movies")), "storage down");
    for rel in ["/token/Music/Album/cover.jpg", "/token/Docs/readme.txt"] {
        assert_eio(read_all(&mount.path(rel)), "storage down");
    }
    assert_eq!(delta(costs(&sim), before), [0; 7]);
    assert_eq!(logged(&mount, "refresh_token refused"), 1, "{}", mount.log());
    assert_file(&sim, &mount, "/pw", "/Docs/notes #1 (100%).txt");
    assert!(mount.stop().success());
}

#[test]
fn a_123pan_session_whose_login_is_refused_midway_is_eio_without_a_login_per_access() {
    if !fuse_tests_enabled() {
        return;
    }
    let sim = Sim::start(false);
    let p = &sim.handle().pan123;
    let logins = |c: &Pan123Counters| c.logins.load(Ordering::Relaxed) + c.login_refused.load(Ordering::Relaxed);
    p.update(|k| k.token_ttl_secs = Some(1.0));
    let mount = Mount::start(&pan123(&sim));
    assert_file(&sim, &mount, "/123", "/Docs/readme.txt");
    // The session token dies and the service now refuses the password login (a risk check).
    p.update(|k| k.login_fault = Some(LoginFault::AbroadRisk));
    std::thread::sleep(Duration::from_millis(1200));
    let before = logins(&p.counters);
    let started = Instant::now();
    assert_eio(list(&mount.path("/123/Movies")), "session lost");
    assert!(started.elapsed() < EIO_WITHIN);
    assert_eq!(logins(&p.counters) - before, 1, "one refused login");
    // The storage is down: accesses answer EIO without another login, logged once.
    assert_eio(list(&mount.path("/123/Music")), "storage down");
    for rel in ["/123/Movies/movie.mp4", "/123/Docs/notes #1 (100%).txt"] {
        assert_eio(read_all(&mount.path(rel)), "storage down");
    }
    assert_eq!(logins(&p.counters) - before, 1, "no login per access");
    assert_eq!(logged(&mount, "code 7012"), 1, "{}", mount.log());
    assert!(mount.stop().success());
}

/// A folder's entries (`read_dir` alone only opens it).
fn list(path: &std::path::Path) -> std::io::Result<Vec<std::fs::DirEntry>> {
    std::fs::read_dir(path)?.collect()
}

/// Lines of the mount's log above debug level that contain `text`.
fn logged(mount: &Mount, text: &str) -> usize {
    mount.log().lines().filter(|l| l.contains(text) && !l.contains(" DEBUG ")).count()
}

#[test]
fn rate_limits_on_every_api_cost_one_request_each() {
    if !fuse_tests_enabled() {
        return;
    }
    let sim = Sim::start(false);
    let pp = &sim.handle().pikpak;
    let pan = &sim.handle().pan123;
    // Login: the captcha init and the signin are refused as "too frequent" first.
    pp.update(|k| k.rate_limit_burst = 2);
    let mount = Mount::start(&[pikpak(&sim, "/pikpak", ""), pan123(&sim)].concat());
    assert_eq!(counter(&sim, |c| &c.rate_limited), 2);
    assert_eq!(counter(&sim, |c| &c.signins), 1);
    assert_file(&sim, &mount, "/pikpak", "/Docs/readme.txt");
    // Drive calls (a listing, a link): each refusal costs one retry, up to five in a row.
    let before = costs(&sim);
    pp.update(|k| k.rate_limit_burst = 5);
    assert_file(&sim, &mount, "/pikpak", "/Movies/movie.srt");
    assert_eq!(delta(costs(&sim), before), [0, 0, 0, 0, 0, 0, 5]);
    // The sixth in a row is EIO (a listing here), and the next access works.
    pp.update(|k| k.rate_limit_burst = 6);
    assert_eio(std::fs::read_dir(mount.path("/pikpak/Music")), "six rate limits in a row");
    assert_eq!(pp.knobs().rate_limit_burst, 0);
    assert_file(&sim, &mount, "/pikpak", "/Music/Album/cover.jpg");
    // 123pan: code 429 on its API (a listing, download_info).
    assert_file(&sim, &mount, "/123", "/Docs/readme.txt");
    pan.update(|k| {
        k.inject_code = 429;
        k.inject_count = 2;
    });
    assert_file(&sim, &mount, "/123", "/Movies/movie.srt");
    assert_eq!(pan.count(|c: &Pan123Counters| &c.injected), 2);
    assert!(mount.stop().success());
}

#[test]
fn provider_down_then_back() {
    if !fuse_tests_enabled() {
        return;
    }
    let sim = Sim::start(false);
    let mount = Mount::start(&pikpak(&sim, "/pikpak", ""));
    let want = sim.file_bytes("/Movies/movie.mp4");
    let movie = std::fs::File::open(mount.path("/pikpak/Movies/movie.mp4")).unwrap();
    let mut buf = vec![0u8; 64 * 1024];
    movie.read_exact_at(&mut buf, 0).unwrap();
    let signins = counter(&sim, |c| &c.signins);

    // Down (API and CDN answer 503) for as long as the reads below take, about 15 s.
    sim.knobs().update(|k| k.provider_down = true);
    let started = Instant::now();
    assert_eio(movie.read_exact_at(&mut buf, 3 << 20), "a read of an open file (link cached)");
    let cdn_tries = sim.stats().down_refused;
    assert!(started.elapsed() < EIO_WITHIN, "{:?}", started.elapsed());
    let started = Instant::now();
    assert_eio(read_all(&mount.path("/pikpak/Music/Album/cover.jpg")), "a file in a folder not listed yet");
    assert!(started.elapsed() < EIO_WITHIN, "{:?}", started.elapsed());
    let api_tries = sim.stats().down_refused - cdn_tries;
    assert_eq!((cdn_tries, api_tries), (7, 6), "six retries of a ranged GET, five of an API call");
    // What was listed before is still there.
    assert!(std::fs::read_dir(mount.path("/pikpak/Movies")).unwrap().count() >= 3);

    // Back: the same reads give the bytes, with no new login and nothing refused.
    sim.knobs().update(|k| k.provider_down = false);
    movie.read_exact_at(&mut buf, 3 << 20).unwrap();
    assert_eq!(buf, want[3 << 20..(3 << 20) + buf.len()]);
    assert_file(&sim, &mount, "/pikpak", "/Music/Album/cover.jpg");
    assert_eq!(sim.stats().down_refused, cdn_tries + api_tries);
    assert_eq!(counter(&sim, |c| &c.signins), signins);

    // An outage shorter than the retry budget (1 s) is only a slower read.
    sim.handle().stats.reset();
    sim.knobs().update(|k| k.provider_down = true);
    let knobs = sim.handle().knobs.clone();
    let end = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_secs(1));
        knobs.update(|k| k.provider_down = false);
    });
    // A seek back (no read-ahead): one ranged request and its retries.
    movie.read_exact_at(&mut buf, 1 << 20).unwrap();
    end.join().unwrap();
    assert_eq!(buf, want[1 << 20..(1 << 20) + buf.len()]);
    // How many retries fit in the second depends on the backoff's jitter (3 or 4), and on
    // how late the thread that ends the outage wakes up on a busy machine.
    let refused = sim.stats().down_refused;
    assert!((2..=6).contains(&refused), "{refused}");
    drop(movie);
    assert!(mount.stop().success());
}

#[test]
fn dns_failure_is_eio_for_that_storage_only() {
    if !fuse_tests_enabled() {
        return;
    }
    let sim = Sim::start(false);
    let port = sim.handle().addr.port();
    let unresolvable = pikpak(&sim, "/dns", "").replace("127.0.0.1", "panmount-test.invalid");
    // A link tree whose CDN host does not resolve: the API is fine, the downloads are not.
    let links = sim
        .config(panmount::sim::SizeMode::Full, "", "")
        .replace(&format!("127.0.0.1:{port}"), &format!("cdn.invalid:{port}"));
    let started = Instant::now();
    let mount = Mount::start(&[pikpak(&sim, "/pikpak", ""), unresolvable, links].concat());
    assert!(started.elapsed() < EIO_WITHIN, "mounted after {:?}", started.elapsed());
    assert_eio(std::fs::read_dir(mount.path("/dns")), "API host does not resolve");
    assert_file(&sim, &mount, "/pikpak", "/Docs/readme.txt");
    let started = Instant::now();
    assert_eio(read_all(&mount.path("/links/Docs/readme.txt")), "CDN host does not resolve");
    assert!(started.elapsed() < EIO_WITHIN, "{:?}", started.elapsed());
    assert_eq!(mount_stat(&mount, "/links", "range_requests"), 7, "DNS failures are retried like resets");
    assert_eq!(sim.stats().requests, 1, "only /pikpak's read reached the CDN");
    assert_eq!(logged(&mount, "storage unavailable"), 1, "{}", mount.log());
    assert!(mount.stop().success());
}

#[test]
fn a_refused_login_leaves_four_other_storages_serving() {
    if !fuse_tests_enabled() {
        return;
    }
    let sim = Sim::start(false);
    let base = sim.handle().base_url();
    let share_id = sim.handle().pikpak.knobs().share_id;
    let text = [
        pikpak(&sim, "/bad", "").replace("\"secret\"", "\"wrong\""),
        pikpak(&sim, "/pikpak", ""),
        format!("[[storage]]\npath = \"/share\"\ndriver = \"pikpak_share\"\napi_base = \"{base}\"\nuser_base = \"{base}\"\nshare_id = \"{share_id}\"\n"),
        pan123(&sim),
        sim.config(panmount::sim::SizeMode::Full, "", ""),
    ]
    .concat();
    let mount = Mount::start(&text);
    for storage in ["/pikpak", "/share", "/123", "/links"] {
        assert_file(&sim, &mount, storage, "/Movies/movie.srt");
    }
    for _ in 0..5 {
        assert_eio(std::fs::read_dir(mount.path("/bad")), "wrong password");
        assert_eio(std::fs::metadata(mount.path("/bad/Docs")), "wrong password");
    }
    // One refused signin at mount time; accesses after it do not try again (at most once a
    // minute), and the log says why once.
    assert_eq!(counter(&sim, |c| &c.signin_refused), 1);
    assert_eq!(logged(&mount, "invalid_account_or_password"), 1, "{}", mount.log());
    for storage in ["/pikpak", "/share", "/123", "/links"] {
        assert_file(&sim, &mount, storage, "/Docs/readme.txt");
    }
    assert!(mount.stop().success());
}

/// The next `count` API calls whose path contains `path` answer `status` with `body`.
fn api_fault(sim: &Sim, status: u16, body: &str, count: u32, path: &str) {
    let body = serde_json::from_str(body).unwrap();
    let fault = ApiFault { status, body, count, path_contains: path.into() };
    sim.knobs().update(|k| k.api_fault = Some(fault));
}

/// Calls of `api_fault` not answered yet.
fn faults_left(sim: &Sim) -> u32 {
    sim.knobs().get().api_fault.map_or(0, |f| f.count)
}

/// What `ls` shows of the data dir's folder `rel`: names, folders with a trailing `/`, sorted.
fn real_entries(sim: &Sim, rel: &str) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(sim.data.path().join(rel.trim_start_matches('/')))
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            let name = e.file_name().into_string().unwrap();
            if e.file_type().unwrap().is_dir() { format!("{name}/") } else { name }
        })
        .collect();
    names.sort();
    names
}

/// `panmount ls CONFIG path`: (exit code, sorted lines, stderr).
fn ls(config: &str, path: &str) -> (i32, Vec<String>, String) {
    let (_dir, file) = write_config(config);
    let (code, out, err) = run(&["ls", file.to_str().unwrap(), path]);
    let mut lines: Vec<String> = String::from_utf8(out).unwrap().lines().map(str::to_owned).collect();
    lines.sort();
    (code, lines, err)
}

#[test]
fn a_123pan_listing_answered_429_or_5xx_is_retried_whatever_the_body() {
    let sim = Sim::start(false);
    let config = pan123(&sim);
    let want = real_entries(&sim, "/");
    for (status, body) in [
        (503, r#"{"message":"Service Unavailable"}"#),
        (500, "{}"),
        (503, r#"{"code":503,"message":"busy"}"#),
        (429, r#"{"code":429,"message":"请求太频繁"}"#),
    ] {
        api_fault(&sim, status, body, 3, "/file/list");
        let (code, entries, err) = ls(&config, "/123");
        assert_eq!((code, &entries), (0, &want), "HTTP {status} {body}: {err}");
        assert_eq!(faults_left(&sim), 0, "HTTP {status} {body}: each answer was retried");
    }
}

#[test]
fn a_123pan_listing_answered_4xx_without_a_code_is_an_error_not_an_empty_folder() {
    let sim = Sim::start(false);
    let config = pan123(&sim);
    for (status, body) in [(404, r#"{"message":"Not Found"}"#), (400, "{}"), (403, r#"{"code":0,"data":{}}"#)] {
        api_fault(&sim, status, body, 1, "/file/list");
        let (code, entries, err) = ls(&config, "/123");
        assert_ne!(code, 0, "HTTP {status} {body}: listed {entries:?}");
        assert!(entries.is_empty() && err.contains(&format!("HTTP {status}")), "HTTP {status} {body}: {err}");
    }
    // Nothing is left over that a healthy listing would not show.
    let (code, entries, err) = ls(&config, "/123");
    assert_eq!((code, entries), (0, real_entries(&sim, "/")), "{err}");
}

#[test]
fn a_123pan_http_401_with_code_401_still_logs_in_again_once() {
    let sim = Sim::start(false);
    let config = pan123(&sim);
    let logins = || sim.handle().pan123.count(|c: &Pan123Counters| &c.logins);
    let (code, _, err) = ls(&config, "/123");
    assert_eq!((code, logins()), (0, 1), "{err}");
    api_fault(&sim, 401, r#"{"code":401,"message":"token is expired","data":null}"#, 1, "/file/list");
    let (code, entries, err) = ls(&config, "/123");
    assert_eq!((code, entries), (0, real_entries(&sim, "/")), "{err}");
    assert_eq!((faults_left(&sim), logins()), (0, 3), "the start's login and one re-login");
}

/// A mounted folder's entries as `real_entries` shows them.
fn names(mount: &Mount, rel: &str) -> Vec<String> {
    let mut names: Vec<String> = list(&mount.path(rel))
        .unwrap_or_else(|e| panic!("{rel}: {e}"))
        .iter()
        .map(|e| {
            let name = e.file_name().into_string().unwrap();
            if e.file_type().unwrap().is_dir() { format!("{name}/") } else { name }
        })
        .collect();
    names.sort();
    names
}

#[test]
fn a_123pan_api_error_through_a_mount_is_the_real_entries_or_eio_never_an_empty_folder() {
    if !fuse_tests_enabled() {
        return;
    }
    let sim = Sim::start(false);
    let mount = Mount::start(&pan123(&sim));
    let names = |rel: &str| names(&mount, rel);
    // 123pan: a 503 with a JSON body that is not an envelope, twice, then healthy.
    api_fault(&sim, 503, r#"{"message":"Service Unavailable"}"#, 2, "/file/list");
    assert_eq!(names("/123/Movies"), real_entries(&sim, "/Movies"));
    assert_eq!(faults_left(&sim), 0);
    // A 4xx without code is EIO, and leaves nothing cached: the next listing is the real one.
    api_fault(&sim, 404, "{}", 1, "/file/list");
    assert_eio(list(&mount.path("/123/Music")), "HTTP 404 {}");
    assert_eq!(names("/123/Music"), real_entries(&sim, "/Music"));
    assert!(mount.stop().success());
}

#[test]
fn a_pikpak_503_whose_envelope_says_token_expired_is_retried_without_a_refresh() {
    if !fuse_tests_enabled() {
        return;
    }
    let sim = Sim::start(false);
    let mount = Mount::start(&pikpak(&sim, "/pikpak", ""));
    let names = |rel: &str| names(&mount, rel);
    let before = costs(&sim);
    api_fault(&sim, 503, r#"{"error":"unauthenticated","error_code":16}"#, 2, "/drive/v1/files");
    assert_eq!(names("/pikpak/Music"), real_entries(&sim, "/Music"));
    assert_eq!(faults_left(&sim), 0);
    assert_eq!(delta(costs(&sim), before), [0; 7], "no refresh, nothing refused");
    assert!(mount.stop().success());
}
