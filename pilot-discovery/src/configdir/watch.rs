use std::path::Path;
use std::time::Duration;

use notify::{RecommendedWatcher, RecursiveMode, Watcher};
use tokio::sync::mpsc;

/// How long the folder must be quiet before it is re-read: editors and
/// `kubectl cp` write a file in several steps within a few milliseconds, and
/// one reload should see them all.
pub const QUIET_PERIOD: Duration = Duration::from_millis(20);

/// A folder written without pause is still re-read this often.
pub const MAX_WAIT: Duration = Duration::from_millis(100);

/// Watches `dir` and yields one signal per burst of changes.
///
/// The returned watcher must be kept alive for as long as signals are wanted.
pub fn watch_folder(dir: &Path) -> notify::Result<(RecommendedWatcher, mpsc::Receiver<()>)> {
    let (raw_tx, mut raw_rx) = mpsc::channel::<()>(1);
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        match event {
            Ok(e) if e.kind.is_access() => {}
            Ok(_) => {
                // A full channel already holds a pending signal, which is enough.
                let _ = raw_tx.try_send(());
            }
            Err(e) => tracing::warn!(error = %e, "config folder watch error"),
        }
    })?;
    watcher.watch(dir, RecursiveMode::NonRecursive)?;

    let (tx, rx) = mpsc::channel::<()>(1);
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
            if tx.send(()).await.is_err() {
                return;
            }
        }
    });
    Ok((watcher, rx))
}
