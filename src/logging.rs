//! Where the log filter comes from, in one place, so the precedence is one rule users can read
//! in `--help` and the README.
//!
//! The command line beats the environment, as in most tools: a unit file or a shell profile
//! may export `RUST_LOG` for other programs, and a flag typed now is what the user means now.
//! 1. `--log-level LEVEL` (or `-v`/`-vv`; the two conflict): the level of panmount's own
//!    messages; other crates stay at `warn`.
//! 2. `PANMOUNT_LOG`, a full `tracing` filter (panmount's own variable, so it beats the generic
//!    one when both are set).
//! 3. `RUST_LOG`, the same syntax.
//! 4. `info` for the long-running commands (`mount`, `demo`, `sim`), `warn` for the others, whose
//!    output is their answer.
//!
//! The HTTP crates (reqwest, hyper, h2, rustls) are capped at `warn` whatever the level, since
//! their debug output contains request URLs, and a signed URL is a secret. Only a filter that
//! names such a crate (`RUST_LOG=info,hyper=debug`) lifts its cap: the user asked for it.

/// The crates whose debug output may carry signed URLs.
const HTTP_CRATES: [&str; 5] = ["reqwest", "hyper", "hyper_util", "h2", "rustls"];

/// What the user asked for, from the command line and the environment.
#[derive(Debug, Default, Clone)]
pub struct LogRequest {
    /// `--log-level`.
    pub level: Option<String>,
    /// How many `-v`.
    pub verbose: u8,
    /// `mount`, `demo`, `sim`: they log at `info` by default.
    pub long_running: bool,
    /// `PANMOUNT_LOG`.
    pub panmount_log: Option<String>,
    /// `RUST_LOG`.
    pub rust_log: Option<String>,
}

impl LogRequest {
    /// Read the two environment variables (empty means unset).
    pub fn from_env(level: Option<String>, verbose: u8, long_running: bool) -> Self {
        let var = |name| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
        LogRequest { level, verbose, long_running, panmount_log: var("PANMOUNT_LOG"), rust_log: var("RUST_LOG") }
    }

    /// The `tracing_subscriber::EnvFilter` directives.
    pub fn filter(&self) -> String {
        let flag_level = self.level.clone().or(match self.verbose {
            0 => None,
            1 => Some("debug".into()),
            _ => Some("trace".into()),
        });
        match (flag_level, &self.panmount_log, &self.rust_log) {
            (Some(level), _, _) => own_level(&level),
            (None, Some(filter), _) | (None, None, Some(filter)) => filter.clone(),
            (None, None, None) => own_level(if self.long_running { "info" } else { "warn" }),
        }
    }

    /// The HTTP crates held at `warn` or quieter: those the filter does not name.
    pub fn capped_crates(&self) -> Vec<&'static str> {
        let filter = self.filter();
        HTTP_CRATES.into_iter().filter(|c| !names_crate(&filter, c)).collect()
    }
}

/// `LEVEL` for panmount's targets, and no more than `warn` for every other crate.
fn own_level(level: &str) -> String {
    match level {
        "off" | "error" => level.to_owned(),
        _ => format!("warn,panmount={level}"),
    }
}

/// Whether a filter has a directive for `krate` (its target, or a module inside it).
fn names_crate(filter: &str, krate: &str) -> bool {
    filter.split(',').any(|directive| {
        let target = directive.split(['=', '[']).next().unwrap_or("").trim();
        target == krate || target.starts_with(&format!("{krate}::"))
    })
}

/// The levels `--log-level` accepts.
pub const LEVELS: [&str; 6] = ["off", "error", "warn", "info", "debug", "trace"];

/// Install the subscriber: human-readable lines on stderr (journald picks them up under
/// systemd), colours only on a terminal. The cap is a second filter that an event must also
/// pass, so it only ever lowers a level (`RUST_LOG=error` keeps reqwest at error).
pub fn init(request: &LogRequest) {
    use tracing_subscriber::filter::{LevelFilter, Targets};
    use tracing_subscriber::prelude::*;
    let filter = tracing_subscriber::EnvFilter::new(request.filter());
    let cap = Targets::new()
        .with_default(LevelFilter::TRACE)
        .with_targets(request.capped_crates().into_iter().map(|c| (c, LevelFilter::WARN)));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let layer = tracing_subscriber::fmt::layer().with_writer(std::io::stderr).with_ansi(ansi).with_target(false);
    tracing_subscriber::registry().with(layer.with_filter(filter).with_filter(cap)).init();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(level: Option<&str>, verbose: u8, panmount_log: Option<&str>, rust_log: Option<&str>) -> LogRequest {
        LogRequest {
            level: level.map(Into::into),
            verbose,
            long_running: true,
            panmount_log: panmount_log.map(Into::into),
            rust_log: rust_log.map(Into::into),
        }
    }

    #[test]
    fn command_line_beats_panmount_log_beats_rust_log() {
        assert_eq!(req(Some("trace"), 0, Some("debug"), Some("info")).filter(), "warn,panmount=trace");
        assert_eq!(req(None, 1, Some("info"), None).filter(), "warn,panmount=debug");
        assert_eq!(req(None, 2, None, None).filter(), "warn,panmount=trace");
        assert_eq!(req(None, 0, Some("panmount=debug"), Some("info")).filter(), "panmount=debug");
        assert_eq!(req(None, 0, None, Some("info")).filter(), "info");
        assert_eq!(req(None, 0, None, None).filter(), "warn,panmount=info");
        let quiet = LogRequest { long_running: false, ..req(None, 0, None, None) };
        assert_eq!(quiet.filter(), "warn,panmount=warn");
        assert_eq!(req(Some("error"), 0, None, None).filter(), "error");
    }

    #[test]
    fn http_crates_stay_at_warn_unless_named() {
        assert_eq!(req(Some("trace"), 0, None, None).capped_crates(), HTTP_CRATES);
        assert_eq!(req(None, 0, None, Some("trace")).capped_crates(), HTTP_CRATES);
        let named = req(None, 0, None, Some("info,hyper=debug,reqwest::connect=trace"));
        assert_eq!(named.capped_crates(), ["hyper_util", "h2", "rustls"]);
        // A span filter names its target too.
        assert!(names_crate("h2[conn]=debug", "h2"));
        assert!(!names_crate("panmount=debug", "h2"));
    }

    #[test]
    fn every_filter_parses() {
        for level in LEVELS {
            tracing_subscriber::EnvFilter::try_new(req(Some(level), 0, None, None).filter()).unwrap();
        }
    }
}
