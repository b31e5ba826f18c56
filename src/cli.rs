//! The command line of INTERFACE.md (clap derive). `--help` on every command explains it.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "panmount",
    version,
    about = "Mount PikPak and 123pan drives, shares and signed direct links as a local folder (FUSE)."
)]
pub struct Cli {
    /// More log output (-v: debug, -vv: trace); the same as --log-level debug or trace.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// The level of panmount's own log messages (stderr). Without it (or -v), PANMOUNT_LOG and
    /// then RUST_LOG are read as `tracing` filters (e.g. `info,panmount::drivers=debug`);
    /// default: info for mount, demo and sim, warn for the others. HTTP crates stay at warn
    /// unless a filter names them (their debug output shows signed URLs).
    #[arg(long, global = true, value_name = "LEVEL", conflicts_with = "verbose",
          value_parser = clap::builder::PossibleValuesParser::new(crate::logging::LEVELS))]
    pub log_level: Option<String>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Mount every storage of CONFIG under one mount point; serve until SIGINT/SIGTERM, then
    /// unmount cleanly and exit 0. Runs in the foreground (systemd friendly).
    Mount {
        /// The config file (TOML).
        config: PathBuf,
        /// Overrides the config file's `mountpoint`.
        #[arg(long)]
        mountpoint: Option<PathBuf>,
        /// Let other users read the mount (overrides `[fuse] allow_other`; used by the fstab
        /// helper for `-o allow_other`).
        #[arg(long)]
        allow_other: bool,
        /// Mount every storage read-only (writes get EROFS), whatever the config says.
        #[arg(long)]
        read_only: bool,
    },
    /// The upload queue of a mount with this config (running or not): one row per pending,
    /// running or failed upload. Exit 0 when none has failed for good, 1 otherwise.
    Uploads {
        config: PathBuf,
        /// Show the queue again every second until it is empty.
        #[arg(long)]
        watch: bool,
    },
    /// Log in to every storage and list its root; print one row per storage. Exit 0 only if
    /// all are ok.
    Check { config: PathBuf },
    /// List PATH (a path inside the mount tree, e.g. /pikpak/Movies) without FUSE.
    Ls {
        config: PathBuf,
        path: String,
        /// Long format: type and permissions, size, modification time, name.
        #[arg(short = 'l')]
        long: bool,
    },
    /// List every folder of the storages (or of the subtree at PATH) through the drivers, under
    /// their rate limits, and keep the listings in `state_dir` (or `[cache] dir`), so the next
    /// mount serves the whole tree at once. Progress on stderr, a summary on stdout. Exit 0 if
    /// every storage was walked, 1 if any failed (named), 2 for a config mistake.
    Warm {
        config: PathBuf,
        /// A folder inside the mount tree, e.g. /pikpak/Movies (default: everything).
        path: Option<String>,
    },
    /// Write a file's bytes to stdout, through the same read path as the mount, without FUSE.
    Cat {
        config: PathBuf,
        path: String,
        /// Byte offsets START-END, END inclusive as in HTTP (`0-0` is the first byte;
        /// `START-` runs to the end).
        #[arg(long, value_parser = parse_range)]
        range: Option<ByteRange>,
    },
    /// Print a running mount's counters: bytes served and fetched (read amplification), range
    /// requests, link mints, listings and block cache hits, per storage.
    Stats { mountpoint: PathBuf },
    /// PikPak offline (cloud) downloads: add URLs, list tasks, remove tasks.
    Offline {
        #[command(subcommand)]
        command: OfflineCommand,
    },
    /// Convert an OpenList/alist storage export into panmount `[[storage]]` tables on stdout.
    /// EXPORT is the admin API's answer (`GET /api/admin/storage/list`), a JSON array of
    /// storages, or a backup file with a `storages` array. Every storage that cannot be
    /// converted (disabled, unsupported driver, missing option) gets a comment in the output and
    /// a line on stderr. Exit 0 if at least one storage was converted, 1 if none, 2 if EXPORT
    /// cannot be read or is not such an export.
    ImportOpenlist {
        /// The export file (JSON).
        export: PathBuf,
    },
    /// Try panmount without an account: start the bundled provider simulator on loopback with
    /// sample files and mount it through the real 123pan_link driver at MOUNTPOINT.
    Demo { mountpoint: PathBuf },
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell) to stdout.
    Completions { shell: clap_complete::Shell },
    /// Print the man page (roff) to stdout: `panmount man | man -l -`.
    Man,
    /// Run the provider simulator alone (for development, tests and benchmarks).
    Sim {
        /// Address to listen on (loopback by default; port 0 picks a free one).
        #[arg(long, default_value = "127.0.0.1:8123")]
        listen: SocketAddr,
        /// Directory to serve; default: a generated sample tree.
        #[arg(long)]
        data: Option<PathBuf>,
        /// Require 123pan `auth_key` signatures made with this key on CDN links.
        #[arg(long, env = "PANMOUNT_SIM_PRIVATE_KEY", hide_env_values = true)]
        private_key: Option<String>,
        /// The account uid the CDN expects in `auth_key`.
        #[arg(long, default_value_t = 0)]
        uid: u64,
    },
}

#[derive(Debug, Subcommand)]
pub enum OfflineCommand {
    /// Start downloading each URL (magnet:, http(s)://, ed2k://, ...) into the storage; prints
    /// one task id per line.
    Add {
        config: PathBuf,
        /// The storage's path in the config (e.g. /pikpak).
        #[arg(long)]
        storage: String,
        #[arg(required = true)]
        urls: Vec<String>,
        /// A folder inside that storage (default: the provider's default folder).
        #[arg(long)]
        to: Option<String>,
    },
    /// Show the storage's offline tasks: id, phase, progress, size, name.
    List {
        config: PathBuf,
        #[arg(long)]
        storage: String,
        /// Keep refreshing: on a terminal the table is redrawn in place, otherwise only changed
        /// rows are printed. Stops (exit 0) once no task is running or pending, or on Ctrl-C.
        #[arg(long)]
        watch: bool,
        /// Seconds between two refreshes with --watch (at least 1).
        #[arg(long, value_name = "SECS", default_value_t = 3, requires = "watch",
              value_parser = clap::value_parser!(u64).range(1..))]
        interval: u64,
        /// With --watch: keep watching when no task is running, until Ctrl-C.
        #[arg(long, requires = "watch")]
        follow: bool,
    },
    /// Delete tasks (the downloaded files stay).
    Remove {
        config: PathBuf,
        #[arg(long)]
        storage: String,
        #[arg(required = true)]
        task_ids: Vec<String>,
    },
}

/// An inclusive byte range; `end: None` runs to the end of the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteRange {
    pub start: u64,
    pub end: Option<u64>,
}

pub fn parse_range(text: &str) -> Result<ByteRange, String> {
    let (start, end) = text.split_once('-').ok_or("expected START-END or START- (e.g. 0-1023)")?;
    let start = start.trim().parse().map_err(|_| format!("START {start:?} is not a byte offset"))?;
    let end = match end.trim() {
        "" => None,
        e => Some(e.parse().map_err(|_| format!("END {e:?} is not a byte offset"))?),
    };
    if end.is_some_and(|e| e < start) {
        return Err("END is before START".into());
    }
    Ok(ByteRange { start, end })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        assert_eq!(parse_range("0-0"), Ok(ByteRange { start: 0, end: Some(0) }));
        assert_eq!(parse_range("10-"), Ok(ByteRange { start: 10, end: None }));
        assert!(parse_range("5-4").is_err());
        assert!(parse_range("-5").is_err());
        assert!(parse_range("a-b").is_err());
        assert!(parse_range("7").is_err());
    }

    #[test]
    fn every_command_has_help() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
        for sub in Cli::command().get_subcommands() {
            assert!(sub.get_about().is_some(), "{} has no help", sub.get_name());
        }
    }
}
