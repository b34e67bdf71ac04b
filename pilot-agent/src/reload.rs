//! Turns a settled change of a watched path into a hot restart: build the
//! bootstrap again, write it aside, have Envoy validate it, and only then
//! put it in place and ask the supervisor for a new epoch. A bootstrap that
//! fails any step is logged and dropped; Envoy keeps running on the last
//! good one, which also stays on disk for cold restarts.

use std::path::{Path, PathBuf};

use tokio::sync::mpsc;

use crate::bootstrap::{self, BootstrapConfig, BootstrapError, Sources, BOOTSTRAP_FILE};
use crate::envoy;
use crate::supervisor::Control;

/// Name of the candidate bootstrap while it is validated.
pub const CANDIDATE_FILE: &str = "envoy-rev.next.json";

#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    #[error(transparent)]
    Bootstrap(#[from] BootstrapError),
    #[error("{0}")]
    Invalid(String),
    #[error("cannot put {from} in place of {to}: {source}")]
    Install {
        from: PathBuf,
        to: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

pub struct Reloader {
    pub cfg: BootstrapConfig,
    pub sources: Sources,
    /// The agent's config folder (`--config-path`).
    pub dir: PathBuf,
    pub envoy_binary: PathBuf,
}

impl Reloader {
    /// Files the agent writes itself: changes to them are not news.
    pub fn own_files(&self) -> Vec<PathBuf> {
        [BOOTSTRAP_FILE, CANDIDATE_FILE]
            .iter()
            .flat_map(|f| [self.dir.join(f), self.dir.join(format!(".{f}.tmp"))])
            .collect()
    }

    /// Builds, validates and installs a new bootstrap; returns its path.
    pub async fn apply(&self) -> Result<PathBuf, ReloadError> {
        let b = bootstrap::build(&self.cfg, &self.sources)?;
        let candidate = self.dir.join(CANDIDATE_FILE);
        bootstrap::write_file(&candidate, &b)?;
        if let Err(e) = envoy::validate(&self.envoy_binary, &candidate).await {
            let _ = std::fs::remove_file(&candidate);
            return Err(ReloadError::Invalid(e));
        }
        let path = self.dir.join(BOOTSTRAP_FILE);
        install(&candidate, &path)?;
        Ok(path)
    }
}

fn install(from: &Path, to: &Path) -> Result<(), ReloadError> {
    std::fs::rename(from, to).map_err(|source| ReloadError::Install {
        from: from.to_path_buf(),
        to: to.to_path_buf(),
        source,
    })
}

/// Applies every settled change and asks for a hot restart when it passes.
pub async fn run(r: Reloader, mut changes: mpsc::Receiver<()>, control: mpsc::Sender<Control>) {
    while changes.recv().await.is_some() {
        match r.apply().await {
            Ok(path) => {
                tracing::info!(bootstrap = %path.display(), "watched files changed; hot-restarting Envoy");
                if control.send(Control::HotRestart).await.is_err() {
                    return;
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "new bootstrap rejected; Envoy keeps running with the current one")
            }
        }
    }
}
