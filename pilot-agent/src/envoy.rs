//! Starting Envoy and passing signals to it.

use std::path::PathBuf;
use std::process::ExitStatus;

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use tokio::process::{Child, Command};
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::mpsc;

use crate::supervisor::{Launcher, Running};

#[derive(Debug, Clone)]
pub struct EnvoyOptions {
    pub binary: PathBuf,
    pub config_path: PathBuf,
    pub log_level: String,
    pub component_log_level: Option<String>,
    pub concurrency: Option<u32>,
}

#[derive(Debug, thiserror::Error)]
pub enum EnvoyError {
    #[error("cannot start Envoy {binary}: {source}")]
    Spawn {
        binary: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot listen for signals: {0}")]
    Signals(#[source] std::io::Error),
}

/// Envoy's command line for these options.
pub fn args(opts: &EnvoyOptions) -> Vec<String> {
    let mut args = vec![
        "-c".to_string(),
        opts.config_path.display().to_string(),
        "--log-level".to_string(),
        opts.log_level.clone(),
        // Several Envoys may share a host (tests, a node's many pods without
        // isolated IPC): let each pick a free shared-memory base id.
        "--use-dynamic-base-id".to_string(),
        "--drain-strategy".to_string(),
        "immediate".to_string(),
    ];
    if let Some(c) = &opts.component_log_level {
        args.push("--component-log-level".to_string());
        args.push(c.clone());
    }
    if let Some(n) = opts.concurrency {
        args.push("--concurrency".to_string());
        args.push(n.to_string());
    }
    args
}

pub fn spawn(opts: &EnvoyOptions) -> Result<Child, EnvoyError> {
    let args = args(opts);
    tracing::info!(binary = %opts.binary.display(), ?args, "starting Envoy");
    Command::new(&opts.binary)
        .args(&args)
        .kill_on_drop(true)
        .spawn()
        .map_err(|source| EnvoyError::Spawn {
            binary: opts.binary.clone(),
            source,
        })
}

/// A running Envoy.
pub struct EnvoyProc(Child);

impl Running for EnvoyProc {
    async fn wait(&mut self) -> std::io::Result<ExitStatus> {
        self.0.wait().await
    }

    fn signal(&self, sig: Signal) {
        if let Some(pid) = self.0.id().and_then(|p| i32::try_from(p).ok()) {
            if let Err(e) = kill(Pid::from_raw(pid), sig) {
                tracing::warn!(error = %e, "cannot signal Envoy");
            }
        }
    }
}

/// Launches Envoy with fixed options, for the supervisor.
pub struct EnvoyLauncher(pub EnvoyOptions);

impl Launcher for EnvoyLauncher {
    type Proc = EnvoyProc;

    fn launch(&mut self, attempt: u32) -> Result<EnvoyProc, String> {
        if attempt > 0 {
            tracing::info!(attempt, "starting Envoy again");
        }
        spawn(&self.0).map(EnvoyProc).map_err(|e| e.to_string())
    }
}

/// Turns SIGTERM and SIGINT into stop requests for the supervisor.
pub async fn forward_signals(to: mpsc::Sender<Signal>) -> Result<(), EnvoyError> {
    let mut term = signal(SignalKind::terminate()).map_err(EnvoyError::Signals)?;
    let mut int = signal(SignalKind::interrupt()).map_err(EnvoyError::Signals)?;
    loop {
        let sig = tokio::select! {
            _ = term.recv() => Signal::SIGTERM,
            _ = int.recv() => Signal::SIGINT,
        };
        if to.send(sig).await.is_err() {
            return Ok(());
        }
    }
}

/// The exit code a shell would report for `status`.
pub fn exit_code(status: ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    status
        .code()
        .or_else(|| status.signal().map(|s| 128 + s))
        .unwrap_or(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_line() {
        let a = args(&EnvoyOptions {
            binary: "envoy".into(),
            config_path: "/etc/istio/proxy/envoy-rev.json".into(),
            log_level: "warning".into(),
            component_log_level: Some("misc:error".into()),
            concurrency: Some(2),
        });
        assert_eq!(
            a[..4],
            [
                "-c",
                "/etc/istio/proxy/envoy-rev.json",
                "--log-level",
                "warning"
            ]
        );
        assert!(a.windows(2).any(|w| w == ["--concurrency", "2"]));
        assert!(a
            .windows(2)
            .any(|w| w == ["--component-log-level", "misc:error"]));
    }

    #[tokio::test]
    async fn exit_status_is_passed_through() {
        let mut p = EnvoyProc(
            Command::new("sh")
                .args(["-c", "exit 7"])
                .spawn()
                .expect("sh"),
        );
        assert_eq!(exit_code(p.wait().await.expect("waits")), 7);
        let mut p = EnvoyProc(Command::new("sleep").arg("30").spawn().expect("sleep"));
        p.signal(Signal::SIGKILL);
        assert_eq!(exit_code(p.wait().await.expect("waits")), 137);
    }
}
