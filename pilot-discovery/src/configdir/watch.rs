use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

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

/// One burst of changes, as handed to the folder's reader.
#[derive(Debug)]
pub struct Burst {
    pub changes: Changes,
    /// When the first event of the burst arrived. The quiet period and the
    /// reader's backlog come after it, and the push pipeline counts its
    /// windows from here.
    pub first_event: Instant,
}

/// Events gathered while a burst lasts.
#[derive(Default)]
struct Pending {
    changes: Changes,
    first_event: Option<Instant>,
}

impl Pending {
    fn note(&mut self, event: notify::Result<notify::Event>) {
        self.first_event.get_or_insert_with(Instant::now);
        match event {
            Ok(e) => self.changes.add(&e),
            Err(e) => {
                // The backend may have dropped events with this error.
                tracing::warn!(error = %e, "config folder watch error; the folder will be re-read");
                self.changes = Changes::everything();
            }
        }
    }

    fn take(&mut self) -> Option<Burst> {
        let pending = std::mem::take(self);
        if pending.changes == Changes::default() {
            return None;
        }
        Some(Burst {
            changes: pending.changes,
            first_event: pending.first_event.unwrap_or_else(Instant::now),
        })
    }
}

/// Watches `dir` and yields what changed, once per burst of changes.
///
/// The returned watcher must be kept alive for as long as changes are wanted.
pub fn watch_folder(dir: &Path) -> notify::Result<(RecommendedWatcher, mpsc::Receiver<Burst>)> {
    // Events pile up here while a burst lasts, and while the folder's reader
    // is busy with the previous one.
    let pending = Arc::new(Mutex::new(Pending::default()));
    let (raw_tx, mut raw_rx) = mpsc::channel::<()>(1);
    let seen = pending.clone();
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        if matches!(&event, Ok(e) if e.kind.is_access()) {
            return;
        }
        seen.lock()
            .unwrap_or_else(PoisonError::into_inner)
            .note(event);
        // A full channel already holds a pending signal, which is enough.
        let _ = raw_tx.try_send(());
    })?;
    watcher.watch(dir, RecursiveMode::NonRecursive)?;

    let (tx, rx) = mpsc::channel::<Burst>(1);
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
            let burst = pending
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .take();
            let Some(burst) = burst else { continue };
            if tx.send(burst).await.is_err() {
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

    #[tokio::test]
    async fn a_burst_is_dated_from_its_first_event() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (_watcher, mut bursts) = watch_folder(dir.path()).expect("watch");
        let before = Instant::now();
        std::fs::write(dir.path().join("a.yaml"), "kind: x\n").expect("write");
        let burst = tokio::time::timeout(Duration::from_secs(10), bursts.recv())
            .await
            .expect("a burst within 10 s")
            .expect("the watcher is running");
        let received = Instant::now();
        assert!(
            burst.changes.paths.iter().any(|p| p.ends_with("a.yaml")),
            "{burst:?}"
        );
        assert!(burst.first_event >= before, "dated before the write");
        // The quiet period came after the first event, so the burst's date
        // is not when it was handed over.
        assert!(
            received >= burst.first_event + QUIET_PERIOD,
            "dated {:?} before it was received",
            received - burst.first_event
        );
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
