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
        Command::Mount { config, mountpoint, allow_other, read_only } => {
            let mut config = Config::load(&config)?;
            config.fuse.allow_other |= allow_other;
            for storage in &mut config.storages {
                storage.read_only |= read_only;
            }
            app::mount(rt, config, mountpoint)
        }
        Command::Check { config } => rt.block_on(app::check(&Config::load(&config)?)),
        Command::Ls { config, path, long } => rt.block_on(app::ls(&Config::load(&config)?, &path, long)),
        Command::Warm { config, path } => rt.block_on(panmount::warm::run(&Config::load(&config)?, path.as_deref())),
        Command::Cat { config, path, range } => rt.block_on(app::cat(&Config::load(&config)?, &path, range)),
        Command::Stats { mountpoint } => app::stats(&mountpoint),
        Command::Uploads { config, watch } => rt.block_on(app::uploads(&Config::load(&config)?, watch)),
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
            use panmount::offline::{Action, Watch, run};
            let (config, storage, action) = match command {
                OfflineCommand::Add { config, storage, urls, to } => (config, storage, Action::Add { urls, to }),
                OfflineCommand::List { config, storage, watch, interval, follow } => {
                    let watch = watch.then(|| Watch { interval: std::time::Duration::from_secs(interval), follow });
                    (config, storage, Action::List { watch })
                }
                OfflineCommand::Remove { config, storage, task_ids } => {
                    (config, storage, Action::Remove { ids: task_ids })
                }
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

/// Logs: see `panmount::logging` for where the filter comes from.
fn init_logging(cli: &Cli) {
    let long_running = matches!(cli.command, Command::Mount { .. } | Command::Demo { .. } | Command::Sim { .. });
    panmount::logging::init(&panmount::logging::LogRequest::from_env(cli.log_level.clone(), cli.verbose, long_running));
}
