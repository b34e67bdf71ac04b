//! The config-folder adapter: the same YAML a user would `kubectl apply`,
//! read from a directory and watched for changes.

mod folder;
mod parse;
mod source;
mod watch;

use std::path::PathBuf;

use notify::RecommendedWatcher;
use tokio::sync::mpsc;

use crate::metrics::Metrics;
use crate::readiness::Readiness;
use crate::sources::{self, Reader, SourceEvent};

pub use folder::{ConfigFolder, Reload};
pub use parse::{parse_file, ParsedFile};
pub use watch::{watch_folder, Burst, Changes};

#[derive(Debug, thiserror::Error)]
pub enum FolderError {
    #[error("cannot read config folder {dir}: {source}")]
    Read {
        dir: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot watch config folder {dir}: {source}")]
    Watch {
        dir: PathBuf,
        #[source]
        source: notify::Error,
    },
    #[error("config folder loading task failed: {0}")]
    Join(#[from] tokio::task::JoinError),
}

/// The running adapter: its published view, and the watch that keeps it
/// current (dropping this stops watching).
pub struct FolderSource {
    pub reader: Reader,
    _watcher: RecommendedWatcher,
}

/// Watches `dir`, reads it whole, then reloads what each change names in
/// the background. The folder is watched before it is read, so a change
/// made during the first read is not missed. A folder that cannot be
/// watched or read fails here, naming it; `/ready` lists it as pending
/// until the first read is done.
pub async fn start(
    dir: PathBuf,
    events: mpsc::Sender<SourceEvent>,
    metrics: Metrics,
    readiness: &Readiness,
) -> Result<FolderSource, FolderError> {
    let loading = readiness.register(format!("config folder {}", dir.display()));
    let (watcher, bursts) = watch_folder(&dir).map_err(|source| FolderError::Watch {
        dir: dir.clone(),
        source,
    })?;
    let load_metrics = metrics.clone();
    let (folder, state) = tokio::task::spawn_blocking(move || {
        let mut folder = ConfigFolder::new(&dir);
        let state = source::load(&mut folder, &load_metrics)
            .map_err(|source| FolderError::Read { dir, source })?;
        Ok::<_, FolderError>((folder, state))
    })
    .await??;
    let (writer, reader) = sources::channel();
    writer.publish(state);
    drop(loading);
    tokio::spawn(source::run(folder, bursts, writer, events, metrics));
    Ok(FolderSource {
        reader,
        _watcher: watcher,
    })
}
