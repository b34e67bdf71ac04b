//! Envoy as the supervisor sees it: its command line for each restart
//! epoch, starting it, signalling it, asking its admin API, and checking a
//! bootstrap before a hot restart.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use crate::admin::{Admin, ServerInfo};
use crate::child;
use crate::supervisor::{AdminApi, Launched, Launcher, Process};

#[derive(Debug, Clone)]
pub struct EnvoyOptions {
    pub binary: PathBuf,
    pub config_path: PathBuf,
    pub log_level: String,
    pub component_log_level: Option<String>,
    pub concurrency: Option<u32>,
    /// A fixed shared-memory base id; `None` lets epoch 0 choose a free one
    /// and write it to `base_id_path` for the epochs after it.
    pub base_id: Option<u32>,
    pub base_id_path: PathBuf,
    /// Envoy's `--drain-time-s`: how long listeners drain.
    pub drain_duration: Duration,
    /// Envoy's `--parent-shutdown-time-s`: when a hot restart's old epoch exits.
    pub parent_shutdown: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum EnvoyError {
    #[error("cannot start Envoy {binary}: {source}")]
    Spawn {
        binary: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot read the base id epoch 0 wrote to {path}: {detail}")]
    BaseId { path: PathBuf, detail: String },
}

/// Whole seconds, rounded up: Envoy's timers take seconds, and a
/// sub-second setting must not become zero.
fn secs(d: Duration) -> String {
    let s = d.as_secs() + u64::from(d.subsec_nanos() > 0);
    s.max(1).to_string()
}

/// Envoy's command line for `epoch`; `base_id` is required after epoch 0.
pub fn args(opts: &EnvoyOptions, epoch: u32, base_id: Option<u32>) -> Vec<String> {
    let mut args = vec![
        "-c".to_string(),
        opts.config_path.display().to_string(),
        "--log-level".to_string(),
        opts.log_level.clone(),
        "--restart-epoch".to_string(),
        epoch.to_string(),
        "--drain-time-s".to_string(),
        secs(opts.drain_duration),
        "--parent-shutdown-time-s".to_string(),
        secs(opts.parent_shutdown),
        // Close connections as soon as a drain starts rather than spreading
        // the closes over the drain time: the agent decides how long to wait.
        "--drain-strategy".to_string(),
        "immediate".to_string(),
    ];
    match (epoch, base_id) {
        (0, None) => {
            // Several Envoys may share a host (tests, pods without isolated
            // IPC): let epoch 0 pick a free base id and say which.
            args.push("--use-dynamic-base-id".to_string());
            args.push("--base-id-path".to_string());
            args.push(opts.base_id_path.display().to_string());
        }
        (_, Some(id)) => {
            args.push("--base-id".to_string());
            args.push(id.to_string());
        }
        (_, None) => {}
    }
    if epoch > 0 {
        // If the parent died meanwhile, start cold instead of failing.
        args.push("--skip-hot-restart-on-no-parent".to_string());
    }
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

/// A running Envoy, signalled by pid. The reaper reports its exit.
pub struct EnvoyProcess {
    pid: Pid,
}

impl Process for EnvoyProcess {
    fn signal(&self, sig: Signal) {
        match kill(self.pid, sig) {
            Ok(()) | Err(nix::errno::Errno::ESRCH) => {}
            Err(e) => {
                tracing::warn!(pid = %self.pid, signal = %sig, error = %e, "cannot signal Envoy")
            }
        }
    }
}

/// Starts Envoy for the supervisor.
pub struct EnvoyLauncher(pub EnvoyOptions);

impl EnvoyLauncher {
    fn base_id(&self, epoch: u32) -> Result<Option<u32>, EnvoyError> {
        if self.0.base_id.is_some() || epoch == 0 {
            return Ok(self.0.base_id);
        }
        let path = &self.0.base_id_path;
        let err = |detail: String| EnvoyError::BaseId {
            path: path.clone(),
            detail,
        };
        let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
        text.trim()
            .parse()
            .map(Some)
            .map_err(|_| err(format!("{:?} is not a number", text.trim())))
    }

    fn start(&self, epoch: u32) -> Result<Launched<EnvoyProcess>, EnvoyError> {
        let base_id = self.base_id(epoch)?;
        let args = args(&self.0, epoch, base_id);
        tracing::info!(binary = %self.0.binary.display(), epoch, ?args, "starting Envoy");
        let spawned = child::spawn(Command::new(&self.0.binary).args(&args)).map_err(|source| {
            EnvoyError::Spawn {
                binary: self.0.binary.clone(),
                source,
            }
        })?;
        let pid = Pid::from_raw(i32::try_from(spawned.pid).unwrap_or(i32::MAX));
        Ok(Launched {
            process: EnvoyProcess { pid },
            exit: spawned.exit,
        })
    }
}

impl Launcher for EnvoyLauncher {
    type Process = EnvoyProcess;

    fn launch(&mut self, epoch: u32) -> Result<Launched<EnvoyProcess>, String> {
        self.start(epoch).map_err(|e| e.to_string())
    }
}

/// The supervisor's view of Envoy's admin API.
pub struct EnvoyAdmin {
    pub admin: Admin,
    /// Listener ports whose connections do not hold up a drain (the agent's
    /// own Prometheus and readiness listeners).
    pub ignored_ports: Vec<u16>,
}

impl AdminApi for EnvoyAdmin {
    async fn server_info(&self) -> Result<ServerInfo, String> {
        self.admin.server_info().await.map_err(|e| e.to_string())
    }

    async fn drain_listeners(&self, inbound_only: bool) -> Result<(), String> {
        self.admin
            .drain_listeners(inbound_only)
            .await
            .map_err(|e| e.to_string())
    }

    async fn active_connections(&self) -> Result<u64, String> {
        let stats = self
            .admin
            .stats(r"^listener\..*\.downstream_cx_active$")
            .await
            .map_err(|e| e.to_string())?;
        Ok(count_active(&stats, &self.ignored_ports))
    }
}

/// Sums `listener.<name>.downstream_cx_active`, leaving out the admin
/// listener and listeners on `ignored` ports (named `<ip>_<port>`).
pub fn count_active(stats: &std::collections::BTreeMap<String, u64>, ignored: &[u16]) -> u64 {
    stats
        .iter()
        .filter(|(name, _)| {
            let Some(listener) = name
                .strip_prefix("listener.")
                .and_then(|n| n.strip_suffix(".downstream_cx_active"))
            else {
                return false;
            };
            let port = listener
                .rsplit_once('_')
                .and_then(|(_, p)| p.parse::<u16>().ok());
            listener != "admin" && !port.is_some_and(|p| ignored.contains(&p))
        })
        .map(|(_, v)| *v)
        .sum()
}

/// Runs `envoy --mode validate` on a bootstrap: a new epoch that dies while
/// starting leaves Envoy's shared memory marked as initializing, which makes
/// every later hot restart of this base id fail, so a bootstrap must be
/// known good before a hot restart uses it.
pub async fn validate(binary: &Path, bootstrap: &Path) -> Result<(), String> {
    let mut cmd = Command::new(binary);
    cmd.args(["--mode", "validate", "-l", "error", "-c"])
        .arg(bootstrap)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut spawned =
        child::spawn(&mut cmd).map_err(|e| format!("cannot run {}: {e}", binary.display()))?;
    let (out, err) = (spawned.child.stdout.take(), spawned.child.stderr.take());
    let output = tokio::task::spawn_blocking(move || {
        let mut text = String::new();
        if let Some(mut o) = out {
            let _ = o.read_to_string(&mut text);
        }
        if let Some(mut e) = err {
            let _ = e.read_to_string(&mut text);
        }
        text
    })
    .await
    .unwrap_or_default();
    let status = spawned
        .exit
        .await
        .map_err(|_| "validation exit status lost".to_string())?;
    if status.success() {
        return Ok(());
    }
    let reason: Vec<&str> = output
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    let tail = reason[reason.len().saturating_sub(3)..].join(" | ");
    Err(format!("Envoy rejects {}: {tail}", bootstrap.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts() -> EnvoyOptions {
        EnvoyOptions {
            binary: "envoy".into(),
            config_path: "/etc/istio/proxy/envoy-rev.json".into(),
            log_level: "warning".into(),
            component_log_level: Some("misc:error".into()),
            concurrency: Some(2),
            base_id: None,
            base_id_path: "/etc/istio/proxy/base-id".into(),
            drain_duration: Duration::from_secs(45),
            parent_shutdown: Duration::from_millis(60_500),
        }
    }

    fn has(a: &[String], pair: [&str; 2]) -> bool {
        a.windows(2).any(|w| w == pair)
    }

    #[test]
    fn cold_start_picks_a_base_id_and_hot_restart_reuses_it() {
        let a = args(&opts(), 0, None);
        assert_eq!(
            a[..4],
            [
                "-c",
                "/etc/istio/proxy/envoy-rev.json",
                "--log-level",
                "warning"
            ]
        );
        assert!(has(&a, ["--restart-epoch", "0"]));
        assert!(a.contains(&"--use-dynamic-base-id".to_string()));
        assert!(has(&a, ["--base-id-path", "/etc/istio/proxy/base-id"]));
        assert!(has(&a, ["--drain-time-s", "45"]));
        assert!(has(&a, ["--parent-shutdown-time-s", "61"]), "rounded up");
        assert!(has(&a, ["--concurrency", "2"]));
        assert!(has(&a, ["--component-log-level", "misc:error"]));

        let a = args(&opts(), 3, Some(42));
        assert!(has(&a, ["--restart-epoch", "3"]));
        assert!(has(&a, ["--base-id", "42"]));
        assert!(!a.contains(&"--use-dynamic-base-id".to_string()));
        assert!(a.contains(&"--skip-hot-restart-on-no-parent".to_string()));
    }

    #[test]
    fn base_id_comes_from_the_file_epoch_zero_wrote() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut o = opts();
        o.base_id_path = dir.path().join("base-id");
        let l = EnvoyLauncher(o);
        assert_eq!(l.base_id(0).expect("epoch 0"), None);
        assert!(l.base_id(1).is_err(), "no file yet");
        std::fs::write(dir.path().join("base-id"), "17").expect("write");
        assert_eq!(l.base_id(1).expect("epoch 1"), Some(17));
    }

    #[test]
    fn active_connections_leave_out_admin_and_agent_listeners() {
        let stats = [
            ("listener.admin.downstream_cx_active", 4),
            ("listener.0.0.0.0_15090.downstream_cx_active", 1),
            ("listener.0.0.0.0_15021.downstream_cx_active", 1),
            ("listener.127.0.0.1_9080.downstream_cx_active", 2),
            ("listener.10.0.0.1_8080.downstream_cx_active", 3),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        assert_eq!(count_active(&stats, &[15090, 15021]), 5);
    }

    #[tokio::test]
    async fn signals_reach_the_process_and_the_exit_is_reported() {
        use std::os::unix::process::ExitStatusExt;
        let l = EnvoyLauncher(EnvoyOptions {
            binary: "sleep".into(),
            ..opts()
        });
        // `sleep` rejects Envoy's flags and exits non-zero at once.
        let run = l.start(0).expect("spawns");
        assert!(!run.exit.await.expect("status").success());

        let spawned = child::spawn(Command::new("sleep").arg("30")).expect("sleep");
        let p = EnvoyProcess {
            pid: Pid::from_raw(i32::try_from(spawned.pid).expect("pid")),
        };
        p.signal(Signal::SIGTERM);
        assert_eq!(spawned.exit.await.expect("status").signal(), Some(15));
        p.signal(Signal::SIGTERM); // already gone: no error, no panic
    }
}
