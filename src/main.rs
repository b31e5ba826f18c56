//! `panmount`: parse the command line, set up logging and the runtime, run, exit with the
//! code INTERFACE.md promises (0 ok, 2 usage or config mistake, 1 anything else).

use std::process::ExitCode;

use clap::Parser;
use panmount::app::{self, AppError};
use panmount::cli::{Cli, Command, OfflineCommand};
use panmount::config::Config;

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(&cli);
    let rt = match tokio::runtime::Builder::new_multi_thread().enable_all().thread_name("panmount").build() {
        Ok(rt) => rt,
        Err(err) => {
            eprintln!("panmount: cannot start the runtime: {err}");
            return ExitCode::from(1);
        }
    };
    match run(&rt, cli.command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("panmount: {err}");
            ExitCode::from(err.exit_code() as u8)
        }
    }
}

fn run(rt: &tokio::runtime::Runtime, command: Command) -> Result<(), AppError> {
    match command {
        Command::Mount { config, mountpoint, allow_other } => {
            let mut config = Config::load(&config)?;
            config.fuse.allow_other |= allow_other;
            app::mount(rt, &config, mountpoint)
        }
        Command::Check { config } => rt.block_on(app::check(&Config::load(&config)?)),
        Command::Ls { config, path, long } => rt.block_on(app::ls(&Config::load(&config)?, &path, long)),
        Command::Warm { config, path } => rt.block_on(panmount::warm::run(&Config::load(&config)?, path.as_deref())),
        Command::Cat { config, path, range } => rt.block_on(app::cat(&Config::load(&config)?, &path, range)),
        Command::Stats { mountpoint } => app::stats(&mountpoint),
        Command::Completions { shell } => {
            let mut text = Vec::new();
            clap_complete::generate(shell, &mut <Cli as clap::CommandFactory>::command(), "panmount", &mut text);
            print_all(&text)
        }
        Command::Man => {
            let mut text = Vec::new();
            clap_mangen::Man::new(<Cli as clap::CommandFactory>::command())
                .render(&mut text)
                .map_err(|e| AppError::Failed(format!("man page: {e}")))?;
            print_all(&text)
        }
        Command::Offline { command } => {
            use panmount::offline::{Action, run};
            let (config, storage, action) = match command {
                OfflineCommand::Add { config, storage, urls, to } => (config, storage, Action::Add { urls, to }),
                OfflineCommand::List { config, storage } => (config, storage, Action::List),
                OfflineCommand::Remove { config, storage, task_ids } => (config, storage, Action::Remove { ids: task_ids }),
            };
            rt.block_on(run(&Config::load(&config)?, &storage, action))
        }
        Command::ImportOpenlist { export } => {
            let import = panmount::openlist::convert_file(&export)?;
            print_all(import.toml.as_bytes())?;
            import.report()
        }
        Command::Demo { mountpoint } => panmount::demo::run(rt, &mountpoint),
        Command::Sim { listen, data, private_key, uid } => rt
            .block_on(panmount::sim::run_cli(listen, data, private_key, uid))
            .map_err(|e| AppError::Failed(format!("simulator: {e}"))),
    }
}

/// Write generated text to stdout; a reader that stops early (`| head`) is not an error.
fn print_all(text: &[u8]) -> Result<(), AppError> {
    use std::io::Write;
    match std::io::stdout().lock().write_all(text) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(AppError::Failed(format!("stdout: {e}"))),
        _ => Ok(()),
    }
}

/// Logs go to stderr (journald picks them up under systemd). Only panmount's own targets are
/// raised by -v: the HTTP crates' debug output can contain signed URLs, so they stay at warn
/// whatever the filter says.
fn init_logging(cli: &Cli) {
    let quiet_command = !matches!(cli.command, Command::Mount { .. } | Command::Demo { .. } | Command::Sim { .. });
    let level = match (cli.verbose, quiet_command) {
        (0, true) => "warn",
        (0, false) => "info",
        (1, _) => "debug",
        _ => "trace",
    };
    let base = std::env::var("PANMOUNT_LOG").unwrap_or_else(|_| format!("warn,panmount={level}"));
    let filter = tracing_subscriber::EnvFilter::new(format!("{base},reqwest=warn,hyper=warn,hyper_util=warn,h2=warn,rustls=warn"));
    // Colours only on a terminal: journald and log files get plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(ansi).with_target(false).init();
}
