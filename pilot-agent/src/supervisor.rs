//! The state machine that owns every Envoy process of this proxy.
//!
//! It keeps one *current* epoch serving, at most one *starting* epoch during
//! a hot restart, and the *old* epochs still draining after one. Its rules:
//!
//! - A crash of the current epoch (or a health failure: admin not LIVE for
//!   `failure_threshold` probes in a row after it has been LIVE, or
//!   unreachable) ends every epoch and starts epoch 0 again after a backoff
//!   that doubles up to `max_backoff`, inside a budget of restarts that
//!   refills once a process has run for `stable_after`. A spent budget ends
//!   supervision with [`Outcome::BudgetSpent`].
//! - A hot restart starts epoch N+1 once epoch N is LIVE (Envoy refuses a
//!   second start while one is initializing). The new epoch becomes current
//!   when the admin port answers LIVE for it; the old one drains and exits by
//!   Envoy's own timers, and is killed if it has not after
//!   `parent_shutdown + kill_grace`. If the new epoch fails, the old one keeps
//!   serving and the same epoch number is tried again after a backoff, within
//!   the budget; a spent budget abandons that hot restart, never the serving
//!   epoch.
//! - A termination drains first (readiness false, listeners drained), waits
//!   `termination_drain` (or, with `exit_on_zero_active`, for no downstream
//!   connections after `minimum_drain`), then stops every epoch with SIGTERM
//!   and SIGKILL after `kill_grace`. A second termination skips the wait.
//!
//! Processes and the admin API are traits, so the rules are unit-tested with
//! fakes on a paused clock; the agent plugs in Envoy (`envoy.rs`, `admin.rs`).

use std::future::Future;
use std::process::ExitStatus;
use std::time::Duration;

use nix::sys::signal::Signal;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;

use crate::admin::ServerInfo;

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

/// How Envoy's health is judged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HealthPolicy {
    /// Time between probes of the admin `/server_info`; zero turns health
    /// checking off (hot restarts still probe, to see the new epoch LIVE).
    pub interval: Duration,
    /// Failed probes in a row that make the agent restart Envoy.
    pub failure_threshold: u32,
    /// An admin port that has never answered counts as failing only after
    /// this long, so a slow start is not mistaken for a hang.
    pub startup_grace: Duration,
}

impl Default for HealthPolicy {
    fn default() -> Self {
        HealthPolicy {
            interval: Duration::from_secs(10),
            failure_threshold: 3,
            startup_grace: Duration::from_secs(30),
        }
    }
}

/// How the agent drains and stops Envoy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DrainPolicy {
    /// Wait between draining the listeners and stopping Envoy.
    pub termination_drain: Duration,
    /// Instead of a fixed wait, stop once no downstream connection is left.
    pub exit_on_zero_active: bool,
    /// With `exit_on_zero_active`: never stop before this much drain time.
    pub minimum_drain: Duration,
    /// Drain only inbound listeners (sidecars keep calling out while they drain).
    pub inbound_only: bool,
    /// Time between SIGTERM and SIGKILL when stopping a process.
    pub kill_grace: Duration,
    /// Envoy's `--parent-shutdown-time-s`: an old epoch should be gone by then.
    pub parent_shutdown: Duration,
}

impl Default for DrainPolicy {
    fn default() -> Self {
        DrainPolicy {
            termination_drain: Duration::from_secs(5),
            exit_on_zero_active: false,
            minimum_drain: Duration::from_secs(5),
            inbound_only: true,
            kill_grace: Duration::from_secs(10),
            parent_shutdown: Duration::from_secs(60),
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Policy {
    pub restart: RestartPolicy,
    pub health: HealthPolicy,
    pub drain: DrainPolicy,
}

/// Requests to the supervisor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Control {
    /// SIGTERM or SIGINT: drain, then stop. A second one stops at once.
    Terminate,
    /// `/quitquitquit`: stop at once.
    Quit,
    /// `/drain`: readiness false and listeners drained, but keep running.
    Drain,
    /// The bootstrap changed: move to a new epoch without dropping traffic.
    HotRestart,
}

/// A started process: something to signal, and its exit to wait for.
pub trait Process: Send + Sync + 'static {
    fn signal(&self, sig: Signal);
}

pub struct Launched<P> {
    pub process: P,
    pub exit: oneshot::Receiver<ExitStatus>,
}

/// Starts Envoy at a restart epoch (0 for a cold start).
pub trait Launcher: Send {
    type Process: Process;
    fn launch(&mut self, epoch: u32) -> Result<Launched<Self::Process>, String>;
}

/// What the supervisor asks of Envoy's admin API.
pub trait AdminApi: Send + Sync {
    fn server_info(&self) -> impl Future<Output = Result<ServerInfo, String>> + Send;
    fn drain_listeners(
        &self,
        inbound_only: bool,
    ) -> impl Future<Output = Result<(), String>> + Send;
    fn active_connections(&self) -> impl Future<Output = Result<u64, String>> + Send;
}

/// What the supervisor is doing, for readiness and metrics.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Status {
    /// Epoch of the process serving now, if any.
    pub epoch: Option<u32>,
    /// Epoch of a hot restart in progress.
    pub starting_epoch: Option<u32>,
    /// Set once a drain has begun; never cleared.
    pub draining: bool,
    /// The last health probe found the serving epoch LIVE.
    pub live: bool,
    pub crashes: u64,
    pub health_kills: u64,
    pub hot_restarts: u64,
    pub hot_restart_failures: u64,
}

/// How supervision ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Asked to stop, and every Envoy process has exited.
    Stopped,
    /// Envoy kept failing and the restart budget is spent.
    BudgetSpent {
        restarts: u32,
        /// What the last failure was.
        last_failure: String,
    },
}

/// How often a starting epoch's admin is polled to see it LIVE.
const HANDOVER_PROBE: Duration = Duration::from_millis(250);
/// How often, while draining, downstream connections are counted.
const CONNECTION_PROBE: Duration = Duration::from_secs(1);
/// Stands for "no deadline": the loop still wakes on events.
const IDLE: Duration = Duration::from_secs(3600);

struct Proc<P> {
    id: u64,
    epoch: u32,
    process: P,
    launched: Instant,
    /// When set, the process is being killed and this is why.
    killed_for: Option<String>,
    /// For old epochs: when to kill it if it is still draining.
    kill_at: Option<Instant>,
}

enum Phase {
    Serving,
    Backoff {
        until: Instant,
    },
    Draining {
        since: Instant,
        until: Option<Instant>,
    },
    Stopping {
        kill_at: Instant,
        killed: bool,
    },
}

#[derive(Default)]
struct Health {
    failures: u32,
    /// The admin answered this epoch at least once.
    answered: bool,
    /// This epoch has been LIVE at least once.
    was_live: bool,
    /// The last probe found it LIVE.
    live_now: bool,
    last: String,
}

impl Health {
    /// An epoch just seen LIVE: answered, live, no failures.
    fn live() -> Health {
        Health {
            answered: true,
            was_live: true,
            live_now: true,
            ..Health::default()
        }
    }
}

#[derive(Default)]
struct HotRestart {
    wanted: bool,
    /// A change arrived while a hot restart was already under way.
    again: bool,
    not_before: Option<Instant>,
}

type Exit = (u64, Result<ExitStatus, oneshot::error::RecvError>);

struct Supervisor<L: Launcher, A> {
    launcher: L,
    admin: A,
    policy: Policy,
    status: watch::Sender<Status>,
    exits: mpsc::UnboundedSender<Exit>,
    next_id: u64,
    current: Option<Proc<L::Process>>,
    starting: Option<Proc<L::Process>>,
    old: Vec<Proc<L::Process>>,
    phase: Phase,
    budget_left: u32,
    backoff: Duration,
    restarts: u32,
    health: Health,
    hot: HotRestart,
    next_probe: Option<Instant>,
    listeners_drained: bool,
    done: Option<Outcome>,
}

/// Runs Envoy under `policy` until it is stopped or the budget is spent.
/// `status` receives every change of state.
pub async fn supervise<L: Launcher, A: AdminApi>(
    launcher: L,
    admin: A,
    policy: Policy,
    mut control: mpsc::Receiver<Control>,
    status: watch::Sender<Status>,
) -> Outcome {
    let (exits, mut exit_rx) = mpsc::unbounded_channel();
    let mut s = Supervisor {
        launcher,
        admin,
        policy,
        status,
        exits,
        next_id: 0,
        current: None,
        starting: None,
        old: Vec::new(),
        phase: Phase::Serving,
        budget_left: policy.restart.budget,
        backoff: policy.restart.initial_backoff,
        restarts: 0,
        health: Health::default(),
        hot: HotRestart::default(),
        next_probe: None,
        listeners_drained: false,
        done: None,
    };
    s.cold_start();
    let mut control_open = true;
    loop {
        s.publish();
        if let Some(outcome) = s.done.take() {
            return outcome;
        }
        let deadline = s.next_deadline();
        tokio::select! {
            Some((id, result)) = exit_rx.recv() => s.on_exit(id, result),
            c = control.recv(), if control_open => match c {
                Some(c) => s.on_control(c).await,
                // Nobody can ask for anything any more; keep supervising.
                None => control_open = false,
            },
            () = tokio::time::sleep_until(deadline) => s.on_timer().await,
        }
    }
}

impl<L: Launcher, A: AdminApi> Supervisor<L, A> {
    fn launch(&mut self, epoch: u32) -> Result<Proc<L::Process>, String> {
        let Launched { process, exit } = self.launcher.launch(epoch)?;
        let id = self.next_id;
        self.next_id += 1;
        let exits = self.exits.clone();
        tokio::spawn(async move {
            let _ = exits.send((id, exit.await));
        });
        Ok(Proc {
            id,
            epoch,
            process,
            launched: Instant::now(),
            killed_for: None,
            kill_at: None,
        })
    }

    fn cold_start(&mut self) {
        self.phase = Phase::Serving;
        self.health = Health::default();
        match self.launch(0) {
            Ok(p) => {
                self.current = Some(p);
                self.schedule_probe();
            }
            Err(e) => self.fail(format!("cannot start Envoy: {e}"), Instant::now()),
        }
    }

    /// The current epoch failed: end everything and restart cold, or give up.
    fn fail(&mut self, reason: String, launched: Instant) {
        // Old epochs hold the listeners the new epoch 0 must bind.
        for p in self.old.iter().chain(self.starting.iter()) {
            p.process.signal(Signal::SIGKILL);
        }
        self.starting = None;
        self.hot = HotRestart::default();
        if !self.spend_budget(launched) {
            tracing::error!(failure = %reason, restarts = self.restarts, "restart budget spent");
            self.done = Some(Outcome::BudgetSpent {
                restarts: self.restarts,
                last_failure: reason,
            });
            return;
        }
        let wait = self.take_backoff();
        tracing::warn!(failure = %reason, backoff = ?wait, restarts_left = self.budget_left, "restarting Envoy");
        self.phase = Phase::Backoff {
            until: Instant::now() + wait,
        };
        self.next_probe = None;
    }

    /// Takes one restart from the budget; false if none is left.
    fn spend_budget(&mut self, launched: Instant) -> bool {
        if launched.elapsed() >= self.policy.restart.stable_after {
            self.budget_left = self.policy.restart.budget;
            self.backoff = self.policy.restart.initial_backoff;
        }
        if self.budget_left == 0 {
            return false;
        }
        self.budget_left -= 1;
        self.restarts += 1;
        true
    }

    fn take_backoff(&mut self) -> Duration {
        let wait = self.backoff;
        self.backoff = (self.backoff * 2).min(self.policy.restart.max_backoff);
        wait
    }

    /// Plans the next admin probe: fast while a hot restart is pending or
    /// under way, every health interval otherwise, or never.
    fn schedule_probe(&mut self) {
        let interval = self.policy.health.interval;
        let every = if self.starting.is_some() || self.hot.wanted {
            Some(if interval.is_zero() {
                HANDOVER_PROBE
            } else {
                interval.min(HANDOVER_PROBE)
            })
        } else if interval.is_zero() {
            None
        } else {
            Some(interval)
        };
        self.next_probe = every.map(|d| Instant::now() + d);
    }

    fn next_deadline(&self) -> Instant {
        let mut next = Instant::now() + IDLE;
        let mut consider = |t: Option<Instant>| {
            if let Some(t) = t {
                next = next.min(t);
            }
        };
        consider(self.next_probe);
        consider(self.old.iter().filter_map(|p| p.kill_at).min());
        match &self.phase {
            Phase::Serving => {}
            Phase::Backoff { until } => consider(Some(*until)),
            Phase::Draining { since, until } => match until {
                Some(u) => consider(Some(*u)),
                None => consider(Some(
                    (*since + self.policy.drain.minimum_drain)
                        .max(Instant::now() + CONNECTION_PROBE),
                )),
            },
            Phase::Stopping { kill_at, killed } => {
                if !killed {
                    consider(Some(*kill_at))
                }
            }
        }
        next
    }

    fn all_procs(&self) -> impl Iterator<Item = &Proc<L::Process>> {
        self.current
            .iter()
            .chain(self.starting.iter())
            .chain(self.old.iter())
    }

    fn publish(&self) {
        let epoch = self.current.as_ref().map(|p| p.epoch);
        let starting_epoch = self.starting.as_ref().map(|p| p.epoch);
        let draining = self.listeners_drained
            || matches!(self.phase, Phase::Draining { .. } | Phase::Stopping { .. });
        let live = epoch.is_some() && self.health.live_now;
        self.status.send_if_modified(|s| {
            let changed = s.epoch != epoch
                || s.starting_epoch != starting_epoch
                || s.draining != draining
                || s.live != live;
            s.epoch = epoch;
            s.starting_epoch = starting_epoch;
            s.draining = draining;
            s.live = live;
            changed
        });
    }

    fn count(&self, f: impl FnOnce(&mut Status)) {
        self.status.send_modify(f);
    }

    fn on_exit(&mut self, id: u64, result: Result<ExitStatus, oneshot::error::RecvError>) {
        let status = match result {
            Ok(s) => s.to_string(),
            Err(_) => "exit status lost".to_string(),
        };
        if self.starting.as_ref().is_some_and(|p| p.id == id) {
            let Some(p) = self.starting.take() else {
                return;
            };
            if matches!(self.phase, Phase::Serving) {
                self.hot_restart_failed(
                    format!("epoch {} exited before it was ready ({status})", p.epoch),
                    p.launched,
                );
            }
        } else if self.current.as_ref().is_some_and(|p| p.id == id) {
            let Some(p) = self.current.take() else { return };
            match self.phase {
                Phase::Serving => {
                    if let Some(next) = self.starting.take() {
                        tracing::warn!(epoch = p.epoch, %status, "Envoy exited during a hot restart; the new epoch takes over");
                        self.promote(next);
                    } else {
                        let reason = match p.killed_for {
                            Some(health) => health,
                            None => {
                                self.count(|s| s.crashes += 1);
                                format!("Envoy exited unexpectedly ({status})")
                            }
                        };
                        self.fail(reason, p.launched);
                    }
                }
                Phase::Draining { .. } => {
                    tracing::info!(%status, "Envoy exited while draining");
                    self.stop();
                }
                Phase::Backoff { .. } | Phase::Stopping { .. } => {
                    tracing::info!(epoch = p.epoch, %status, "Envoy exited");
                }
            }
        } else if let Some(i) = self.old.iter().position(|p| p.id == id) {
            let p = self.old.remove(i);
            tracing::info!(epoch = p.epoch, %status, "old epoch drained and exited");
        }
        if matches!(self.phase, Phase::Stopping { .. }) && self.all_procs().next().is_none() {
            self.done = Some(Outcome::Stopped);
        }
    }

    async fn on_control(&mut self, c: Control) {
        match (c, &self.phase) {
            (Control::Terminate | Control::Quit, Phase::Backoff { .. }) => {
                tracing::info!("stop requested while Envoy was down");
                self.done = Some(Outcome::Stopped);
            }
            (Control::Terminate, Phase::Serving) => self.begin_drain().await,
            (Control::Terminate, Phase::Stopping { .. }) => self.kill_all(),
            (Control::Terminate | Control::Quit, _) => self.stop(),
            (Control::Drain, _) => self.drain_listeners().await,
            (Control::HotRestart, Phase::Serving) => {
                if self.starting.is_some() {
                    self.hot.again = true;
                } else {
                    self.hot.wanted = true;
                    self.hot.not_before = None;
                    self.schedule_probe();
                }
            }
            (Control::HotRestart, _) => {
                tracing::info!(
                    "bootstrap changed while Envoy is not serving; the next start uses it"
                )
            }
        }
    }

    async fn drain_listeners(&mut self) {
        if self.listeners_drained {
            return;
        }
        self.listeners_drained = true;
        self.publish();
        match self
            .admin
            .drain_listeners(self.policy.drain.inbound_only)
            .await
        {
            Ok(()) => tracing::info!(
                inbound_only = self.policy.drain.inbound_only,
                "Envoy's listeners are draining"
            ),
            Err(e) => tracing::warn!(error = %e, "cannot drain Envoy's listeners"),
        }
    }

    async fn begin_drain(&mut self) {
        let now = Instant::now();
        let d = self.policy.drain;
        self.phase = Phase::Draining {
            since: now,
            until: (!d.exit_on_zero_active).then(|| now + d.termination_drain),
        };
        self.hot = HotRestart::default();
        self.next_probe = None;
        self.drain_listeners().await;
        tracing::info!(wait = ?d.termination_drain, exit_on_zero_active = d.exit_on_zero_active, "draining before stopping Envoy");
    }

    /// Sends SIGTERM to every epoch; SIGKILL follows after the grace.
    fn stop(&mut self) {
        self.phase = Phase::Stopping {
            kill_at: Instant::now() + self.policy.drain.kill_grace,
            killed: false,
        };
        self.next_probe = None;
        for p in self.all_procs() {
            p.process.signal(Signal::SIGTERM);
        }
        if self.all_procs().next().is_none() {
            self.done = Some(Outcome::Stopped);
        }
    }

    fn kill_all(&mut self) {
        tracing::warn!("Envoy did not stop in time; killing it");
        for p in self.all_procs() {
            p.process.signal(Signal::SIGKILL);
        }
        if let Phase::Stopping { killed, .. } = &mut self.phase {
            *killed = true;
        }
    }

    async fn on_timer(&mut self) {
        let now = Instant::now();
        for p in &mut self.old {
            if p.kill_at.is_some_and(|t| t <= now) {
                tracing::warn!(
                    epoch = p.epoch,
                    "old epoch still running after the parent shutdown time; killing it"
                );
                p.process.signal(Signal::SIGKILL);
                p.kill_at = None;
            }
        }
        match self.phase {
            Phase::Backoff { until } if until <= now => {
                tracing::info!("starting Envoy again");
                self.cold_start();
                return;
            }
            Phase::Draining {
                until: Some(until), ..
            } if until <= now => {
                self.stop();
                return;
            }
            Phase::Draining { since, until: None }
                if now >= since + self.policy.drain.minimum_drain =>
            {
                match self.admin.active_connections().await {
                    Ok(0) => {
                        tracing::info!("no active connections left");
                        self.stop();
                    }
                    Ok(n) => tracing::debug!(active = n, "waiting for connections to close"),
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot count active connections; stopping Envoy");
                        self.stop();
                    }
                }
                return;
            }
            Phase::Stopping {
                kill_at,
                killed: false,
            } if kill_at <= now => {
                self.kill_all();
                return;
            }
            _ => {}
        }
        if self.next_probe.is_some_and(|t| t <= now) {
            self.probe().await;
            self.schedule_probe();
        }
    }

    async fn probe(&mut self) {
        if !matches!(self.phase, Phase::Serving) {
            return;
        }
        let info = self.admin.server_info().await;
        if let Some(next) = &self.starting {
            // The admin port belongs to whichever epoch started last; only an
            // answer from the new epoch proves it ready.
            if matches!(&info, Ok(i) if i.epoch == next.epoch && i.is_live()) {
                if let Some(next) = self.starting.take() {
                    self.promote(next);
                }
            }
            return;
        }
        let Some(cur) = &self.current else { return };
        let (cur_epoch, cur_launched) = (cur.epoch, cur.launched);
        self.health.live_now = false;
        let failure = match info {
            Ok(i) if i.epoch == cur_epoch && i.is_live() => {
                self.health = Health::live();
                self.maybe_hot_restart();
                return;
            }
            Ok(i) if i.epoch == cur_epoch => {
                self.health.answered = true;
                if !self.health.was_live {
                    // Still waiting for its first config: not a failure.
                    self.health.failures = 0;
                    return;
                }
                format!("Envoy is {} after having been LIVE", i.state)
            }
            Ok(i) => format!(
                "admin port answered for epoch {} instead of {cur_epoch}",
                i.epoch
            ),
            Err(e) => {
                if !self.health.answered
                    && cur_launched.elapsed() < self.policy.health.startup_grace
                {
                    return;
                }
                e
            }
        };
        if self.policy.health.interval.is_zero() || self.listeners_drained {
            return;
        }
        self.health.failures += 1;
        self.health.last = failure;
        tracing::warn!(failures = self.health.failures, threshold = self.policy.health.failure_threshold, reason = %self.health.last, "Envoy health check failed");
        if self.health.failures >= self.policy.health.failure_threshold {
            let reason = format!(
                "Envoy failed {} health checks in a row (last: {})",
                self.health.failures, self.health.last
            );
            if let Some(cur) = &mut self.current {
                if cur.killed_for.is_none() {
                    // A wedged process may not act on SIGTERM.
                    cur.process.signal(Signal::SIGKILL);
                    cur.killed_for = Some(reason);
                    self.count(|s| s.health_kills += 1);
                }
            }
        }
    }

    fn maybe_hot_restart(&mut self) {
        if !self.hot.wanted || self.hot.not_before.is_some_and(|t| Instant::now() < t) {
            return;
        }
        let Some(cur) = &self.current else { return };
        let epoch = cur.epoch + 1;
        tracing::info!(from = cur.epoch, to = epoch, "hot restart");
        match self.launch(epoch) {
            Ok(p) => self.starting = Some(p),
            Err(e) => {
                self.hot_restart_failed(format!("cannot start epoch {epoch}: {e}"), Instant::now())
            }
        }
    }

    fn hot_restart_failed(&mut self, reason: String, launched: Instant) {
        self.count(|s| s.hot_restart_failures += 1);
        let serving = self.current.as_ref().map(|p| p.epoch);
        if self.spend_budget(launched) {
            let wait = self.take_backoff();
            tracing::warn!(failure = %reason, backoff = ?wait, serving_epoch = ?serving, "hot restart failed; the serving epoch keeps serving and the hot restart is tried again");
            self.hot.wanted = true;
            self.hot.not_before = Some(Instant::now() + wait);
        } else {
            tracing::error!(failure = %reason, serving_epoch = ?serving, "hot restart abandoned: restart budget spent; the serving epoch keeps serving until the next change");
            self.hot = HotRestart::default();
        }
    }

    fn promote(&mut self, next: Proc<L::Process>) {
        tracing::info!(epoch = next.epoch, "new epoch is LIVE and serving");
        if let Some(mut old) = self.current.take() {
            let d = self.policy.drain;
            old.kill_at = Some(Instant::now() + d.parent_shutdown + d.kill_grace);
            self.old.push(old);
        }
        self.current = Some(next);
        self.health = Health::live();
        self.count(|s| s.hot_restarts += 1);
        let again = std::mem::take(&mut self.hot.again);
        self.hot = HotRestart {
            wanted: again,
            ..HotRestart::default()
        };
    }
}

#[cfg(test)]
mod tests;
