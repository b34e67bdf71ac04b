//! Config sources and what they currently hold. Today: the config folder.
//! Each source publishes its resources whole; the push pipeline reads them
//! when a debounced burst ends.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use mesh_model::{ConfigKey, ConfigKind, UpdateKind};
use serde::Serialize;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use crate::configdir::{Burst, ConfigFolder};
use crate::metrics::Metrics;
use crate::objects::ConfigError;
use crate::resource::{Origins, ResourceMap};

/// One change a source saw.
#[derive(Debug, Clone, Copy)]
pub struct SourceEvent {
    pub kind: UpdateKind,
    /// When the source first saw the change.
    pub seen: Instant,
}

/// A problem a source reports about one of its inputs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SourceError {
    pub file: PathBuf,
    pub error: String,
}

impl From<&ConfigError> for SourceError {
    fn from(e: &ConfigError) -> Self {
        SourceError {
            file: e.file.clone(),
            error: e.to_string(),
        }
    }
}

/// Everything the sources hold right now.
#[derive(Debug, Default)]
pub struct SourceState {
    pub resources: ResourceMap,
    /// Inputs currently rejected; their last good version (if any) is in
    /// `resources`.
    pub errors: Vec<SourceError>,
    /// The file each resource was read from, where that differs by resource.
    pub files: Origins,
    /// Where every other resource of this source comes from.
    pub origin: Option<Arc<Path>>,
}

impl SourceState {
    /// Where `key` was read from, if this source holds it.
    pub fn file_of(&self, key: &ConfigKey) -> Option<&Path> {
        if !self.resources.contains_key(key) {
            return None;
        }
        self.files
            .get(key)
            .or(self.origin.as_ref())
            .map(AsRef::as_ref)
    }
}

/// The aggregate registry's inputs: what each source holds, in order of
/// precedence (the config folder first, then Kubernetes).
#[derive(Debug, Clone, Default)]
pub struct SourceSet {
    sources: Vec<watch::Receiver<Arc<SourceState>>>,
}

impl SourceSet {
    pub fn add(&mut self, source: watch::Receiver<Arc<SourceState>>) {
        self.sources.push(source);
    }

    pub fn current(&self) -> Vec<Arc<SourceState>> {
        self.sources.iter().map(|s| s.borrow().clone()).collect()
    }
}

pub fn folder_state(folder: &ConfigFolder) -> SourceState {
    folder_state_with(folder, folder_errors(folder))
}

fn folder_errors(folder: &ConfigFolder) -> Vec<SourceError> {
    folder.current_errors().map(SourceError::from).collect()
}

fn folder_state_with(folder: &ConfigFolder, errors: Vec<SourceError>) -> SourceState {
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
        count_rejected(metrics, e.resource.as_ref().map(|k| k.kind));
    }
}

/// Counts one rejected resource of `kind` (`None`: a whole file).
pub fn count_rejected(metrics: &Metrics, kind: Option<ConfigKind>) {
    metrics
        .rejected_configs
        .with_label_values(&[kind.map_or("file", ConfigKind::as_str)])
        .inc();
}

/// Reloads the folder on every change signal, publishes what it holds and
/// sends one event per changed resource to the debouncer.
pub async fn run_folder(
    mut folder: ConfigFolder,
    mut signals: mpsc::Receiver<Burst>,
    state: watch::Sender<Arc<SourceState>>,
    events: mpsc::Sender<SourceEvent>,
    metrics: Metrics,
) {
    while let Some(burst) = signals.recv().await {
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
        let errors = folder_errors(&folder);
        if reload.is_changed() || errors != state.borrow().errors {
            state.send_replace(Arc::new(folder_state_with(&folder, errors)));
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

/// Counts and sends one event per changed resource, first seen at `seen`,
/// to the debouncer; false once the debouncer is gone (shutting down).
pub async fn send_events(
    kinds: impl IntoIterator<Item = UpdateKind>,
    seen: tokio::time::Instant,
    events: &mpsc::Sender<SourceEvent>,
    metrics: &Metrics,
) -> bool {
    for kind in kinds {
        metrics
            .inbound_updates
            .with_label_values(&[kind.label()])
            .inc();
        if events.send(SourceEvent { kind, seen }).await.is_err() {
            return false;
        }
    }
    true
}

/// The first load of the folder, before the server is ready.
pub fn load_folder(folder: &mut ConfigFolder, metrics: &Metrics) -> std::io::Result<SourceState> {
    let reload = folder.reload()?;
    log_errors(&reload.errors, metrics);
    tracing::info!(dir = %folder.dir().display(), resources = folder.resources().len(), "config folder loaded");
    Ok(folder_state(folder))
}
