//! Watches the paths whose change means a new bootstrap (`--watch`, the
//! template, the override) and reports settled changes: a burst of events,
//! such as Kubernetes swapping a secret's symlinks, becomes one report once
//! the paths have been quiet for the debounce time.

use std::path::{Path, PathBuf};
use std::time::Duration;

use notify::{EventKind, RecursiveMode, Watcher as _};
use tokio::sync::mpsc;

#[derive(Debug, thiserror::Error)]
#[error("cannot watch {path}: {source}")]
pub struct WatchError {
    path: PathBuf,
    #[source]
    source: notify::Error,
}

/// Keeps the watch alive; dropping it stops watching.
pub struct Watch {
    _watcher: notify::RecommendedWatcher,
}

/// Starts watching `paths`; each message on the returned channel is one
/// settled change. Events on `ignore` (the agent's own files) never count.
pub fn watch(
    paths: &[PathBuf],
    ignore: &[PathBuf],
    debounce: Duration,
) -> Result<(Watch, mpsc::Receiver<()>), WatchError> {
    let (raw_tx, raw_rx) = mpsc::unbounded_channel();
    let targets: Vec<PathBuf> = paths.to_vec();
    let filter = targets.clone();
    let ignore = ignore.to_vec();
    let mut watcher =
        notify::recommended_watcher(move |res: notify::Result<notify::Event>| match res {
            Ok(ev) if matters(&ev, &filter, &ignore) => {
                let _ = raw_tx.send(());
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "file watch error"),
        })
        .map_err(|source| WatchError {
            path: PathBuf::new(),
            source,
        })?;
    for path in &targets {
        // A file is watched through its folder, so that replacing it (write
        // to a temporary name, rename over) is seen too.
        let (at, mode) = if path.is_dir() {
            (path.clone(), RecursiveMode::Recursive)
        } else {
            let parent = path
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
                .unwrap_or(Path::new("."));
            (parent.to_path_buf(), RecursiveMode::NonRecursive)
        };
        watcher.watch(&at, mode).map_err(|source| WatchError {
            path: path.clone(),
            source,
        })?;
    }
    let (tx, rx) = mpsc::channel(1);
    tokio::spawn(settle(raw_rx, tx, debounce));
    Ok((Watch { _watcher: watcher }, rx))
}

fn matters(ev: &notify::Event, targets: &[PathBuf], ignore: &[PathBuf]) -> bool {
    if matches!(ev.kind, EventKind::Access(_)) {
        return false;
    }
    ev.paths.iter().filter(|p| !ignore.contains(p)).any(|p| {
        targets.iter().any(|t| {
            // Kubernetes updates mounted files by swapping a `..data` symlink
            // next to them: any change in the folder of a watched file counts.
            p.starts_with(t) || t.parent().is_some_and(|dir| p.parent() == Some(dir))
        })
    })
}

async fn settle(mut raw: mpsc::UnboundedReceiver<()>, tx: mpsc::Sender<()>, quiet: Duration) {
    while raw.recv().await.is_some() {
        loop {
            match tokio::time::timeout(quiet, raw.recv()).await {
                Ok(Some(())) => continue,
                Ok(None) => return,
                Err(_) => break,
            }
        }
        if tx.send(()).await.is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_burst_of_writes_is_one_change() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("cert.pem");
        std::fs::write(&file, "a").expect("write");
        let (_w, mut rx) =
            watch(std::slice::from_ref(&file), &[], Duration::from_millis(200)).expect("watch");
        for i in 0..5 {
            std::fs::write(&file, format!("b{i}")).expect("write");
        }
        tokio::time::timeout(Duration::from_secs(10), rx.recv())
            .await
            .expect("a change within 10 s")
            .expect("open");
        // The burst settled into that one report.
        assert!(tokio::time::timeout(Duration::from_millis(600), rx.recv())
            .await
            .is_err());
        // Replacing the file by rename is a change too.
        let tmp = dir.path().join(".cert.tmp");
        std::fs::write(&tmp, "c").expect("write");
        std::fs::rename(&tmp, &file).expect("rename");
        tokio::time::timeout(Duration::from_secs(10), rx.recv())
            .await
            .expect("a change within 10 s")
            .expect("open");
    }

    #[test]
    fn what_counts_as_a_change() {
        let ev = |p: &str| notify::Event::new(EventKind::Any).add_path(PathBuf::from(p));
        let targets = [
            PathBuf::from("/certs/a/cert.pem"),
            PathBuf::from("/watched"),
        ];
        let ignore = [PathBuf::from("/certs/a/envoy-rev.json")];
        assert!(matters(&ev("/certs/a/cert.pem"), &targets, &ignore));
        assert!(
            matters(&ev("/certs/a/..data"), &targets, &ignore),
            "symlink swap"
        );
        assert!(matters(&ev("/watched/sub/x"), &targets, &ignore));
        assert!(!matters(&ev("/certs/b/cert.pem"), &targets, &ignore));
        assert!(
            !matters(&ev("/certs/a/envoy-rev.json"), &targets, &ignore),
            "the agent's own file"
        );
    }
}
