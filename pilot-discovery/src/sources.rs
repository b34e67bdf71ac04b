//! The adapters' contract: what a source holds (`SourceState`), published
//! through a writer the source keeps and read through the readers the rest
//! of the server holds (kube-rs's reflector `Writer`/`Store` in shape), and
//! the change events a source sends the debouncer. The config folder and the
//! Kubernetes API server are the sources; each publishes its resources
//! whole, and the push pipeline reads them when a debounced burst ends.

use std::path::{Path, PathBuf};
use std::sync::{Arc, PoisonError, RwLock};

use mesh_model::{ConfigKey, UpdateKind};
use serde::Serialize;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

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

/// Where a source publishes what it holds. Only the source has one.
#[derive(Debug)]
pub struct Writer(watch::Sender<Arc<SourceState>>);

/// What a source holds, as last published; cheap to clone and to read.
#[derive(Debug, Clone)]
pub struct Reader(watch::Receiver<Arc<SourceState>>);

/// A new source's writer and a reader of it; it holds nothing until the
/// first [`Writer::publish`].
pub fn channel() -> (Writer, Reader) {
    let (tx, rx) = watch::channel(Arc::new(SourceState::default()));
    (Writer(tx), Reader(rx))
}

impl Writer {
    /// Replaces what the source holds; readers see it at once.
    pub fn publish(&self, state: SourceState) {
        self.0.send_replace(Arc::new(state));
    }

    /// What was published last.
    pub fn current(&self) -> Arc<SourceState> {
        self.0.borrow().clone()
    }
}

impl Reader {
    pub fn current(&self) -> Arc<SourceState> {
        self.0.borrow().clone()
    }
}

/// The aggregate registry's inputs: what each source holds, in order of
/// precedence (the config folder first, then Kubernetes). Clones share the
/// list, so a source added once the servers are up (the folder, after its
/// first read) is seen by every holder.
#[derive(Debug, Clone, Default)]
pub struct SourceSet {
    sources: Arc<RwLock<Vec<Reader>>>,
}

impl SourceSet {
    /// Adds a source, after those added before it in precedence.
    pub fn add(&self, source: Reader) {
        self.sources
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .push(source);
    }

    pub fn current(&self) -> Vec<Arc<SourceState>> {
        self.sources
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .map(Reader::current)
            .collect()
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
