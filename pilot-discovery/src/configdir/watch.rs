use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use notify::{RecommendedWatcher, RecursiveMode, Watcher};
use tokio::sync::mpsc;

/// How long the folder must be quiet before it is re-read: editors and
/// `kubectl cp` write a file in several steps within a few milliseconds, and
/// one reload should see them all.
pub const QUIET_PERIOD: Duration = Duration::from_millis(20);

/// A folder written without pause is still re-read this often.
pub const MAX_WAIT: Duration = Duration::from_millis(100);

/// Past this many distinct paths in one burst, re-reading the whole folder
/// is as cheap as tracking them, and bounds what a burst can hold.
const MAX_PATHS: usize = 4096;

/// What the watcher saw during one burst of changes.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Changes {
    /// The folder entries that events named.
    pub paths: BTreeSet<PathBuf>,
    /// Events were lost, or did not say what they were about: only
    /// re-reading the whole folder is safe.
    pub rescan: bool,
}

impl Changes {
    /// Everything may have changed.
    pub fn everything() -> Self {
        Changes {
            paths: BTreeSet::new(),
            rescan: true,
        }
    }

    fn add(&mut self, event: &notify::Event) {
        if self.rescan {
            return;
        }
        self.paths.extend(event.paths.iter().cloned());
        if event.need_rescan() || event.paths.is_empty() || self.paths.len() > MAX_PATHS {
            *self = Changes::everything();
        }
    }
}

/// Watches `dir` and yields what changed, once per burst of changes.
///
/// The returned watcher must be kept alive for as long as changes are wanted.
pub fn watch_folder(dir: &Path) -> notify::Result<(RecommendedWatcher, mpsc::Receiver<Changes>)> {
    // Events pile up here while a burst lasts, and while the folder's reader
    // is busy with the previous one.
    let pending = Arc::new(Mutex::new(Changes::default()));
    let (raw_tx, mut raw_rx) = mpsc::channel::<()>(1);
    let seen = pending.clone();
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        match event {
            Ok(e) if e.kind.is_access() => return,
            Ok(e) => seen.lock().unwrap_or_else(PoisonError::into_inner).add(&e),
            Err(e) => {
                // The backend may have dropped events with this error.
                tracing::warn!(error = %e, "config folder watch error; the folder will be re-read");
                *seen.lock().unwrap_or_else(PoisonError::into_inner) = Changes::everything();
            }
        }
        // A full channel already holds a pending signal, which is enough.
        let _ = raw_tx.try_send(());
    })?;
    watcher.watch(dir, RecursiveMode::NonRecursive)?;

    let (tx, rx) = mpsc::channel::<Changes>(1);
    tokio::spawn(async move {
        while raw_rx.recv().await.is_some() {
            // Wait for the burst to end, or for MAX_WAIT.
            let give_up = tokio::time::Instant::now() + MAX_WAIT;
            loop {
                let quiet = (tokio::time::Instant::now() + QUIET_PERIOD).min(give_up);
                match tokio::time::timeout_at(quiet, raw_rx.recv()).await {
                    Ok(Some(())) => continue,
                    Ok(None) | Err(_) => break,
                }
            }
            let changes =
                std::mem::take(&mut *pending.lock().unwrap_or_else(PoisonError::into_inner));
            if changes == Changes::default() {
                continue;
            }
            if tx.send(changes).await.is_err() {
                return;
            }
        }
    });
    Ok((watcher, rx))
}

#[cfg(test)]
mod tests {
    use super::*;
    use notify::event::{CreateKind, EventKind, Flag};

    fn event(paths: &[&str]) -> notify::Event {
        let mut e = notify::Event::new(EventKind::Create(CreateKind::File));
        for p in paths {
            e = e.add_path(PathBuf::from(p));
        }
        e
    }

    #[test]
    fn events_name_paths_until_one_cannot() {
        let mut c = Changes::default();
        c.add(&event(&["/d/a.yaml"]));
        c.add(&event(&["/d/.a.tmp", "/d/a.yaml"]));
        assert!(!c.rescan);
        assert_eq!(c.paths.len(), 2);

        c.add(&event(&[]));
        assert_eq!(c, Changes::everything(), "an event naming nothing");

        let mut c = Changes::default();
        c.add(&event(&["/d/a.yaml"]).set_flag(Flag::Rescan));
        assert_eq!(c, Changes::everything(), "the backend lost events");

        let mut c = Changes::default();
        for i in 0..=MAX_PATHS {
            c.add(&event(&[&format!("/d/{i}.yaml")]));
        }
        assert_eq!(c, Changes::everything(), "too many paths to track");
    }
}
