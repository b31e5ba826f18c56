//! `panmount offline add|list|remove`: PikPak's offline (cloud) downloads from the command line
//! (INTERFACE.md). The storage is found by its `path` in the config; it must offer the
//! [`OfflineTasks`](crate::drivers::OfflineTasks) capability. `--to DIR` is a folder inside that
//! storage, resolved through the driver's own listings (folder by folder from the storage root),
//! so the task gets the provider's folder id. `list --watch` lives in [`watch`].

mod watch;

use crate::app::{AppError, build_fs};
use crate::config::Config;
use crate::drivers::{Entry, OfflineTask, OfflineTasks};
use crate::error::Error;
use crate::storage::Storage;

pub use watch::Watch;

/// What to do.
pub enum Action {
    Add { urls: Vec<String>, to: Option<String> },
    List { watch: Option<Watch> },
    Remove { ids: Vec<String> },
}

pub async fn run(config: &Config, storage_path: &str, action: Action) -> Result<(), AppError> {
    let fs = build_fs(config)?;
    let wanted = crate::config::normalize_storage_path(storage_path).unwrap_or_else(|_| storage_path.to_owned());
    let storage =
        fs.storages().iter().find(|s| s.path == wanted).ok_or_else(|| {
            AppError::Usage(format!("no storage with path {storage_path} in {}", config.file.display()))
        })?;
    let fail = |e: Error| AppError::Failed(format!("storage {}: {e}", storage.path));
    let tasks = storage.driver.offline().ok_or_else(|| {
        AppError::Failed(format!(
            "storage {} ({} driver) has no offline downloads",
            storage.path,
            storage.driver.kind()
        ))
    })?;
    storage.login().await.map_err(|e| AppError::Failed(e.to_string()))?;
    match action {
        Action::Add { urls, to } => {
            let folder = match to {
                Some(dir) => Some(
                    resolve_folder(storage, &dir)
                        .await
                        .map_err(|e| AppError::Failed(format!("storage {}: {dir}: {e}", storage.path)))?,
                ),
                None => None,
            };
            add(tasks, &urls, folder.as_ref()).await.map_err(fail)
        }
        Action::List { watch: Some(options) } => watch::run(tasks, options).await.map_err(fail),
        Action::List { watch: None } => {
            let list = tasks.list().await.map_err(fail)?;
            println!("{}", header());
            for t in &list {
                println!("{}", row(t));
            }
            Ok(())
        }
        Action::Remove { ids } => tasks.remove(&ids).await.map_err(fail),
    }
}

/// The column titles of [`row`].
fn header() -> String {
    format!("{:<28} {:<22} {:>5} {:>14}  NAME", "ID", "PHASE", "%", "SIZE")
}

/// One task as `offline list` prints it (the phase without its `PHASE_TYPE_` prefix).
fn row(t: &OfflineTask) -> String {
    let phase = t.phase.strip_prefix("PHASE_TYPE_").unwrap_or(&t.phase);
    let size = t.size.map_or("-".into(), |s| s.to_string());
    let note = if phase == "ERROR" && !t.message.is_empty() { format!(" ({})", t.message) } else { String::new() };
    format!("{:<28} {:<22} {:>5} {:>14}  {}{note}", t.id, phase, t.progress, size, t.name)
}

async fn add(tasks: &dyn OfflineTasks, urls: &[String], folder: Option<&Entry>) -> Result<(), Error> {
    for url in urls {
        let id = tasks.add(url, folder).await?;
        println!("{id}");
    }
    Ok(())
}

/// The folder at `dir` (a path inside the storage, with names as the mount shows them), found
/// through the driver's listings.
async fn resolve_folder(storage: &Storage, dir: &str) -> Result<Entry, Error> {
    let mut current = storage.driver.root();
    for part in dir.split('/').filter(|p| !p.is_empty() && *p != ".") {
        let children = storage.driver.list(&current).await?;
        current =
            crate::cache::meta::Listing::new(children).named(part).map(|e| e.to_entry()).ok_or(Error::NotFound)?;
        if !current.is_dir {
            return Err(Error::NotDir);
        }
    }
    Ok(current)
}
