//! The folder as a source: what it holds published through the source's
//! writer, reloaded on every burst of changes, one event per changed
//! resource sent to the debouncer.

use mesh_model::UpdateKind;
use tokio::sync::mpsc;

use super::folder::ConfigFolder;
use super::watch::Burst;
use crate::metrics::Metrics;
use crate::objects::ConfigError;
use crate::sources::{send_events, SourceError, SourceEvent, SourceState, Writer};

fn errors_of(folder: &ConfigFolder) -> Vec<SourceError> {
    folder.current_errors().map(SourceError::from).collect()
}

fn state_of(folder: &ConfigFolder, errors: Vec<SourceError>) -> SourceState {
    SourceState {
        resources: folder.resources().clone(),
        errors,
        files: folder.files(),
        origin: None,
    }
}

fn log_errors(errors: &[ConfigError], metrics: &Metrics) {
    for e in errors {
        tracing::error!(file = %e.file.display(), "invalid config: {e}");
        metrics.count_rejected(e.resource.as_ref().map(|k| k.kind));
    }
}

/// The first load of the folder, before the server is ready.
pub fn load(folder: &mut ConfigFolder, metrics: &Metrics) -> std::io::Result<SourceState> {
    let reload = folder.reload()?;
    log_errors(&reload.errors, metrics);
    tracing::info!(dir = %folder.dir().display(), resources = folder.resources().len(), "config folder loaded");
    Ok(state_of(folder, errors_of(folder)))
}

/// Reloads the folder on every burst of changes, publishes what it holds
/// and sends one event per changed resource to the debouncer.
pub async fn run(
    mut folder: ConfigFolder,
    mut bursts: mpsc::Receiver<Burst>,
    writer: Writer,
    events: mpsc::Sender<SourceEvent>,
    metrics: Metrics,
) {
    while let Some(burst) = bursts.recv().await {
        let reload = match folder.reload_changed(&burst.changes) {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(dir = %folder.dir().display(), error = %e, "cannot read config folder; keeping the current config");
                continue;
            }
        };
        log_errors(&reload.errors, &metrics);
        tracing::debug!(
            changed = reload.changed.len(),
            rescanned = reload.rescanned,
            "config folder reloaded"
        );
        // A fix that restores a file's last good contents changes no
        // resource, but clears its errors.
        let errors = errors_of(&folder);
        if reload.is_changed() || errors != writer.current().errors {
            writer.publish(state_of(&folder, errors));
        }
        let kinds: Vec<UpdateKind> = reload
            .changed
            .iter()
            .map(|k| k.kind.info().update)
            .collect();
        let seen = tokio::time::Instant::from_std(burst.first_event);
        if !send_events(kinds, seen, &events, &metrics).await {
            return;
        }
    }
}
