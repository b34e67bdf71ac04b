//! Keeps Envoy running: restarts it when it exits unexpectedly, with
//! exponential backoff inside a restart budget, and passes stop signals on.
//!
//! The loop is generic over how a process is launched, so its rules are
//! unit-tested with fake processes on a paused clock; the agent plugs in the
//! real Envoy (`envoy::EnvoyLauncher`).

use std::future::Future;
use std::process::ExitStatus;
use std::time::Duration;

use nix::sys::signal::Signal;
use tokio::sync::mpsc;
use tokio::time::Instant;

/// How restarts are paced and bounded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RestartPolicy {
    /// Restarts allowed before the agent gives up.
    pub budget: u32,
    /// Wait before the first restart; doubles with each further restart.
    pub initial_backoff: Duration,
    /// Upper bound of the wait.
    pub max_backoff: Duration,
    /// A run this long counts as stable: the budget and backoff reset.
    pub stable_after: Duration,
}

impl Default for RestartPolicy {
    fn default() -> Self {
        RestartPolicy {
            budget: 10,
            initial_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(30),
            stable_after: Duration::from_secs(60),
        }
    }
}

/// A running process the supervisor owns.
pub trait Running: Send {
    fn wait(&mut self) -> impl Future<Output = std::io::Result<ExitStatus>> + Send;
    fn signal(&self, sig: Signal);
}

/// Starts a process; `attempt` counts launches from 0, for logs.
pub trait Launcher: Send {
    type Proc: Running;
    fn launch(&mut self, attempt: u32) -> Result<Self::Proc, String>;
}

/// How supervision ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Asked to stop: the process exited with this status after the signal.
    Stopped(ExitStatus),
    /// The process kept failing and the restart budget is spent.
    BudgetSpent {
        restarts: u32,
        /// What the last failure was: an exit status or a launch error.
        last_failure: String,
    },
}

/// Runs processes from `launcher` until a stop signal arrives on `stop`
/// (forwarded to the process, whose exit then ends supervision) or the
/// restart budget is spent.
pub async fn supervise<L: Launcher>(
    mut launcher: L,
    policy: RestartPolicy,
    mut stop: mpsc::Receiver<Signal>,
) -> Outcome {
    let mut budget_left = policy.budget;
    let mut backoff = policy.initial_backoff;
    let mut restarts = 0;
    let mut attempt = 0;
    loop {
        let started = Instant::now();
        let failure = match launcher.launch(attempt) {
            Err(e) => e,
            Ok(mut proc) => {
                let mut stopping = false;
                let status = loop {
                    tokio::select! {
                        status = proc.wait() => break status,
                        sig = stop.recv(), if !stopping => {
                            // A closed channel means nobody can ask for a stop
                            // any more; keep supervising.
                            if let Some(sig) = sig {
                                tracing::info!(signal = %sig, "forwarding signal to Envoy");
                                proc.signal(sig);
                                stopping = true;
                            }
                        }
                    }
                };
                match status {
                    Ok(status) if stopping => return Outcome::Stopped(status),
                    Ok(status) => format!("Envoy exited unexpectedly ({status})"),
                    Err(e) => format!("cannot wait for Envoy: {e}"),
                }
            }
        };
        attempt += 1;
        if started.elapsed() >= policy.stable_after {
            budget_left = policy.budget;
            backoff = policy.initial_backoff;
        }
        if budget_left == 0 {
            return Outcome::BudgetSpent {
                restarts,
                last_failure: failure,
            };
        }
        budget_left -= 1;
        restarts += 1;
        tracing::warn!(
            failure,
            backoff = ?backoff,
            restarts_left = budget_left,
            "restarting Envoy"
        );
        tokio::select! {
            () = tokio::time::sleep(backoff) => {}
            sig = stop.recv() => {
                if let Some(sig) = sig {
                    use std::os::unix::process::ExitStatusExt;
                    tracing::info!(signal = %sig, "stop requested while Envoy was down");
                    return Outcome::Stopped(ExitStatus::from_raw(0));
                }
            }
        }
        backoff = (backoff * 2).min(policy.max_backoff);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::process::ExitStatusExt;
    use std::sync::{Arc, Mutex};

    /// What one fake process does: exit after `after` with `code`, or run
    /// until signalled (`None`).
    #[derive(Clone, Copy)]
    struct Script {
        after: Option<Duration>,
        code: i32,
    }

    struct FakeProc {
        script: Script,
        signalled: Arc<Mutex<Vec<Signal>>>,
        stop: Arc<tokio::sync::Notify>,
    }

    impl Running for FakeProc {
        async fn wait(&mut self) -> std::io::Result<ExitStatus> {
            match self.script.after {
                Some(d) => tokio::time::sleep(d).await,
                None => self.stop.notified().await,
            }
            Ok(ExitStatus::from_raw(self.script.code << 8))
        }
        fn signal(&self, sig: Signal) {
            if let Ok(mut s) = self.signalled.lock() {
                s.push(sig);
            }
            self.stop.notify_one();
        }
    }

    /// Launches scripted processes (the last script repeats) and records
    /// when each launch happened.
    struct FakeLauncher {
        scripts: Vec<Script>,
        launches: Arc<Mutex<Vec<Duration>>>,
        signalled: Arc<Mutex<Vec<Signal>>>,
        t0: Instant,
    }

    impl Launcher for FakeLauncher {
        type Proc = FakeProc;
        fn launch(&mut self, attempt: u32) -> Result<FakeProc, String> {
            if let Ok(mut l) = self.launches.lock() {
                l.push(self.t0.elapsed());
            }
            let i = (attempt as usize).min(self.scripts.len() - 1);
            Ok(FakeProc {
                script: self.scripts[i],
                signalled: self.signalled.clone(),
                stop: Arc::new(tokio::sync::Notify::new()),
            })
        }
    }

    type Log<T> = Arc<Mutex<Vec<T>>>;

    fn launcher(scripts: Vec<Script>) -> (FakeLauncher, Log<Duration>, Log<Signal>) {
        let launches = Log::default();
        let signalled = Log::default();
        (
            FakeLauncher {
                scripts,
                launches: launches.clone(),
                signalled: signalled.clone(),
                t0: Instant::now(),
            },
            launches,
            signalled,
        )
    }

    const CRASH: Script = Script {
        after: Some(Duration::from_millis(10)),
        code: 1,
    };
    const RUN: Script = Script {
        after: None,
        code: 0,
    };

    fn policy(budget: u32) -> RestartPolicy {
        RestartPolicy {
            budget,
            initial_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_millis(1000),
            stable_after: Duration::from_secs(60),
        }
    }

    fn ms(v: &Log<Duration>) -> Vec<u128> {
        v.lock()
            .map(|l| l.iter().map(|d| d.as_millis()).collect())
            .unwrap_or_default()
    }

    #[tokio::test(start_paused = true)]
    async fn crash_loop_backs_off_exponentially_then_gives_up() {
        let (l, launches, _) = launcher(vec![CRASH]);
        let (_tx, rx) = mpsc::channel(1);
        let outcome = supervise(l, policy(5), rx).await;
        assert_eq!(
            outcome,
            Outcome::BudgetSpent {
                restarts: 5,
                last_failure: "Envoy exited unexpectedly (exit status: 1)".into()
            }
        );
        // Each run lasts 10 ms; waits are 200, 400, 800, then capped at 1000.
        assert_eq!(ms(&launches), vec![0, 210, 620, 1430, 2440, 3450]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_stable_run_refills_the_budget() {
        let long = Script {
            after: Some(Duration::from_secs(120)),
            code: 1,
        };
        // crash, crash, then a long run, then crashes again.
        let (l, launches, _) = launcher(vec![CRASH, CRASH, long, CRASH]);
        let (_tx, rx) = mpsc::channel(1);
        let outcome = supervise(l, policy(2), rx).await;
        assert!(
            matches!(outcome, Outcome::BudgetSpent { restarts: 4, .. }),
            "{outcome:?}"
        );
        // Two restarts, the long run refills the budget, two more restarts,
        // then the fifth failure ends it. Without the refill the budget of 2
        // would have ended after three launches.
        assert_eq!(launches.lock().map(|l| l.len()).unwrap_or(0), 5);
    }

    #[tokio::test(start_paused = true)]
    async fn a_stop_signal_is_forwarded_and_ends_supervision() {
        let (l, launches, signalled) = launcher(vec![RUN]);
        let (tx, rx) = mpsc::channel(1);
        let task = tokio::spawn(supervise(l, policy(3), rx));
        tokio::time::sleep(Duration::from_secs(5)).await;
        tx.send(Signal::SIGTERM).await.expect("send");
        let outcome = task.await.expect("join");
        assert_eq!(outcome, Outcome::Stopped(ExitStatus::from_raw(0)));
        assert_eq!(
            signalled.lock().map(|s| s.clone()).unwrap_or_default(),
            vec![Signal::SIGTERM]
        );
        assert_eq!(ms(&launches), vec![0], "no restart after a requested stop");
    }

    #[tokio::test(start_paused = true)]
    async fn a_crash_is_followed_by_a_restart_that_keeps_running() {
        let (l, launches, _) = launcher(vec![CRASH, RUN]);
        let (tx, rx) = mpsc::channel(1);
        let task = tokio::spawn(supervise(l, policy(3), rx));
        tokio::time::sleep(Duration::from_secs(5)).await;
        assert_eq!(ms(&launches), vec![0, 210]);
        tx.send(Signal::SIGINT).await.expect("send");
        assert!(matches!(task.await.expect("join"), Outcome::Stopped(_)));
    }
}
