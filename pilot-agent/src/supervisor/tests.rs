//! Tests of `supervisor.rs`.

use super::*;
use std::os::unix::process::ExitStatusExt;
use std::sync::{Arc, Mutex};

/// What one fake Envoy does.
#[derive(Clone, Copy)]
struct Script {
    /// Exits on its own after this long with `code`.
    exit_after: Option<Duration>,
    code: i32,
    /// Its admin reports LIVE this long after launch.
    live_after: Duration,
    /// SIGTERM does nothing (a wedged process).
    ignores_term: bool,
}

const RUN: Script = Script {
    exit_after: None,
    code: 0,
    live_after: Duration::from_millis(100),
    ignores_term: false,
};
const CRASH: Script = Script {
    exit_after: Some(Duration::from_millis(10)),
    code: 1,
    ..RUN
};

struct Entry {
    epoch: u32,
    at: Duration,
    script: Script,
    alive: bool,
    signals: Vec<Signal>,
    stop: Option<oneshot::Sender<i32>>,
}

/// Everything the fakes share: launched processes and what the admin
/// port says.
struct World {
    t0: Instant,
    /// Scripts by launch order; the last one repeats.
    scripts: Vec<Script>,
    entries: Vec<Entry>,
    wedged: bool,
    active: u64,
    drains: Vec<bool>,
    parent_shutdown: Duration,
}

type Shared = Arc<Mutex<World>>;

fn world(scripts: Vec<Script>) -> Shared {
    Arc::new(Mutex::new(World {
        t0: Instant::now(),
        scripts,
        entries: Vec::new(),
        wedged: false,
        active: 0,
        drains: Vec::new(),
        parent_shutdown: Duration::from_secs(3),
    }))
}

fn with<T>(w: &Shared, f: impl FnOnce(&mut World) -> T) -> T {
    f(&mut w.lock().expect("world lock"))
}

struct FakeProc {
    world: Shared,
    index: usize,
}

impl Process for FakeProc {
    fn signal(&self, sig: Signal) {
        with(&self.world, |w| {
            let e = &mut w.entries[self.index];
            e.signals.push(sig);
            let exits = sig == Signal::SIGKILL || !e.script.ignores_term;
            if exits {
                if let Some(stop) = e.stop.take() {
                    let _ = stop.send(128 + sig as i32);
                }
            }
        });
    }
}

struct FakeLauncher(Shared);

impl Launcher for FakeLauncher {
    type Process = FakeProc;
    fn launch(&mut self, epoch: u32) -> Result<Launched<FakeProc>, String> {
        let (stop_tx, stop_rx) = oneshot::channel::<i32>();
        let (exit_tx, exit_rx) = oneshot::channel();
        let (index, script, parent) = with(&self.0, |w| {
            let index = w.entries.len();
            let script = w.scripts[index.min(w.scripts.len() - 1)];
            let parent = (epoch > 0)
                .then(|| {
                    w.entries
                        .iter()
                        .rposition(|e| e.alive && e.epoch + 1 == epoch)
                })
                .flatten();
            w.entries.push(Entry {
                epoch,
                at: w.t0.elapsed(),
                script,
                alive: true,
                signals: Vec::new(),
                stop: Some(stop_tx),
            });
            (index, script, parent)
        });
        let w = self.0.clone();
        tokio::spawn(async move {
            let code = match script.exit_after {
                Some(d) => tokio::select! {
                    () = tokio::time::sleep(d) => script.code,
                    c = stop_rx => c.unwrap_or(1),
                },
                None => stop_rx.await.unwrap_or(1),
            };
            with(&w, |w| w.entries[index].alive = false);
            let _ = exit_tx.send(ExitStatus::from_raw(code << 8));
        });
        // Envoy's own timer: the child ends its parent after the parent
        // shutdown time, if the child is still alive then.
        if let Some(parent) = parent {
            let w = self.0.clone();
            tokio::spawn(async move {
                let wait = with(&w, |w| w.parent_shutdown);
                tokio::time::sleep(wait).await;
                with(&w, |w| {
                    if w.entries[index].alive {
                        if let Some(stop) = w.entries[parent].stop.take() {
                            let _ = stop.send(0);
                        }
                    }
                });
            });
        }
        Ok(Launched {
            process: FakeProc {
                world: self.0.clone(),
                index,
            },
            exit: exit_rx,
        })
    }
}

/// The admin port belongs to the newest live process, as in Envoy when
/// a new epoch fails before taking the port over.
struct FakeAdmin(Shared);

impl AdminApi for FakeAdmin {
    async fn server_info(&self) -> Result<ServerInfo, String> {
        with(&self.0, |w| {
            if w.wedged {
                return Err("timed out".into());
            }
            let now = w.t0.elapsed();
            match w.entries.iter().rev().find(|e| e.alive) {
                Some(e) => Ok(ServerInfo {
                    state: if now >= e.at + e.script.live_after {
                        "LIVE".into()
                    } else {
                        "PRE_INITIALIZING".into()
                    },
                    epoch: e.epoch,
                }),
                None => Err("connection refused".into()),
            }
        })
    }
    async fn drain_listeners(&self, inbound_only: bool) -> Result<(), String> {
        with(&self.0, |w| w.drains.push(inbound_only));
        Ok(())
    }
    async fn active_connections(&self) -> Result<u64, String> {
        Ok(with(&self.0, |w| w.active))
    }
}

fn policy(budget: u32) -> Policy {
    Policy {
        restart: RestartPolicy {
            budget,
            initial_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_millis(1000),
            stable_after: Duration::from_secs(60),
        },
        health: HealthPolicy {
            interval: Duration::from_secs(1),
            failure_threshold: 3,
            startup_grace: Duration::from_secs(5),
        },
        drain: DrainPolicy {
            termination_drain: Duration::from_secs(5),
            exit_on_zero_active: false,
            minimum_drain: Duration::from_secs(2),
            inbound_only: true,
            kill_grace: Duration::from_secs(10),
            parent_shutdown: Duration::from_secs(3),
        },
    }
}

struct Run {
    world: Shared,
    control: mpsc::Sender<Control>,
    status: watch::Receiver<Status>,
    task: tokio::task::JoinHandle<Outcome>,
}

fn start(scripts: Vec<Script>, policy: Policy) -> Run {
    let w = world(scripts);
    let (control, rx) = mpsc::channel(8);
    let (tx, status) = watch::channel(Status::default());
    let task = tokio::spawn(supervise(
        FakeLauncher(w.clone()),
        FakeAdmin(w.clone()),
        policy,
        rx,
        tx,
    ));
    Run {
        world: w,
        control,
        status,
        task,
    }
}

impl Run {
    /// (epoch, launch time in ms) of every launch so far.
    fn launches(&self) -> Vec<(u32, u128)> {
        with(&self.world, |w| {
            w.entries
                .iter()
                .map(|e| (e.epoch, e.at.as_millis()))
                .collect()
        })
    }
    fn signals(&self, index: usize) -> Vec<Signal> {
        with(&self.world, |w| w.entries[index].signals.clone())
    }
    fn alive(&self) -> Vec<u32> {
        with(&self.world, |w| {
            w.entries
                .iter()
                .filter(|e| e.alive)
                .map(|e| e.epoch)
                .collect()
        })
    }
    async fn send(&self, c: Control) {
        self.control.send(c).await.expect("supervisor is running");
    }
}

async fn sleep(ms: u64) {
    tokio::time::sleep(Duration::from_millis(ms)).await;
}

#[tokio::test(start_paused = true)]
async fn crash_loop_backs_off_exponentially_then_gives_up() {
    let mut run = start(vec![CRASH], policy(5));
    let outcome = (&mut run.task).await.expect("join");
    assert_eq!(
        outcome,
        Outcome::BudgetSpent {
            restarts: 5,
            last_failure: "Envoy exited unexpectedly (exit status: 1)".into()
        }
    );
    // Each run lasts 10 ms; waits are 200, 400, 800, then capped at 1000.
    let times: Vec<u128> = with(&run.world, |w| {
        w.entries.iter().map(|e| e.at.as_millis()).collect()
    });
    assert_eq!(times, vec![0, 210, 620, 1430, 2440, 3450]);
}

#[tokio::test(start_paused = true)]
async fn a_stable_run_refills_the_budget() {
    let long = Script {
        exit_after: Some(Duration::from_secs(120)),
        ..CRASH
    };
    let mut run = start(vec![CRASH, CRASH, long, CRASH], policy(2));
    let outcome = (&mut run.task).await.expect("join");
    assert!(
        matches!(outcome, Outcome::BudgetSpent { restarts: 4, .. }),
        "{outcome:?}"
    );
    // Two restarts, the long run refills the budget, two more, then the
    // fifth failure ends it. Without the refill it ends after three.
    assert_eq!(with(&run.world, |w| w.entries.len()), 5);
}

#[tokio::test(start_paused = true)]
async fn a_crash_is_followed_by_a_cold_restart_at_epoch_zero() {
    let run = start(vec![CRASH, RUN], policy(3));
    sleep(5000).await;
    assert_eq!(run.launches(), vec![(0, 0), (0, 210)]);
    assert_eq!(run.status.borrow().crashes, 1);
    assert_eq!(run.status.borrow().epoch, Some(0));
    assert!(run.status.borrow().live, "probes see the new Envoy LIVE");
}

#[tokio::test(start_paused = true)]
async fn a_wedged_envoy_is_killed_and_restarted() {
    let run = start(vec![RUN], policy(3));
    // Probes run every second from t=1 s; wedge between two of them.
    sleep(5500).await;
    with(&run.world, |w| w.wedged = true);
    sleep(2500).await;
    assert_eq!(run.launches().len(), 1, "two failed probes are not enough");
    with(&run.world, |w| w.wedged = false);
    sleep(1000).await;
    with(&run.world, |w| w.wedged = true);
    sleep(3100).await;
    // The recovered probe reset the count; three new failures kill it.
    assert_eq!(run.signals(0), vec![Signal::SIGKILL]);
    with(&run.world, |w| w.wedged = false);
    sleep(1000).await;
    assert_eq!(run.launches().len(), 2);
    assert_eq!(run.status.borrow().health_kills, 1);
    assert_eq!(run.status.borrow().crashes, 0);
}

#[tokio::test(start_paused = true)]
async fn waiting_for_config_is_not_a_health_failure() {
    let slow = Script {
        live_after: Duration::from_secs(600),
        ..RUN
    };
    let run = start(vec![slow], policy(3));
    sleep(60_000).await;
    assert_eq!(run.launches().len(), 1);
    assert!(run.signals(0).is_empty());
}

#[tokio::test(start_paused = true)]
async fn hot_restart_moves_to_the_next_epoch_and_the_old_one_exits_by_itself() {
    let run = start(vec![RUN], policy(3));
    sleep(1000).await;
    run.send(Control::HotRestart).await;
    sleep(1000).await;
    assert_eq!(run.status.borrow().epoch, Some(1));
    assert_eq!(run.alive(), vec![0, 1], "the old epoch drains");
    sleep(3000).await;
    assert_eq!(run.alive(), vec![1], "Envoy's timer ended epoch 0");
    assert!(run.signals(0).is_empty(), "the agent never had to kill it");
    // And again: epoch 2 follows epoch 1.
    run.send(Control::HotRestart).await;
    sleep(5000).await;
    assert_eq!(run.alive(), vec![2]);
    assert_eq!(run.status.borrow().hot_restarts, 2);
    let epochs: Vec<u32> = run.launches().iter().map(|l| l.0).collect();
    assert_eq!(epochs, vec![0, 1, 2]);
}

#[tokio::test(start_paused = true)]
async fn hot_restart_waits_until_the_current_epoch_is_live() {
    let slow = Script {
        live_after: Duration::from_secs(5),
        ..RUN
    };
    let run = start(vec![slow, RUN], policy(3));
    sleep(1000).await;
    run.send(Control::HotRestart).await;
    sleep(10_000).await;
    let l = run.launches();
    assert_eq!(l.len(), 2);
    assert!(l[1].1 >= 5000, "epoch 1 started at {} ms", l[1].1);
}

#[tokio::test(start_paused = true)]
async fn a_failed_new_epoch_leaves_the_old_serving_and_is_retried_with_the_same_number() {
    let run = start(vec![RUN, CRASH, RUN], policy(3));
    sleep(1000).await;
    run.send(Control::HotRestart).await;
    sleep(3000).await;
    let epochs: Vec<u32> = run.launches().iter().map(|l| l.0).collect();
    assert_eq!(epochs, vec![0, 1, 1], "the retry is epoch 1 again");
    assert!(run.signals(0).is_empty(), "epoch 0 was never touched");
    assert_eq!(run.status.borrow().epoch, Some(1));
    assert_eq!(run.status.borrow().hot_restart_failures, 1);
}

#[tokio::test(start_paused = true)]
async fn a_hot_restart_that_keeps_failing_is_abandoned_not_the_serving_epoch() {
    let run = start(vec![RUN, CRASH], policy(2));
    sleep(1000).await;
    run.send(Control::HotRestart).await;
    sleep(30_000).await;
    let epochs: Vec<u32> = run.launches().iter().map(|l| l.0).collect();
    assert_eq!(epochs, vec![0, 1, 1, 1], "first try and two retries");
    assert_eq!(run.alive(), vec![0]);
    assert!(run.signals(0).is_empty());
    assert!(!run.task.is_finished(), "the agent keeps running");
    assert_eq!(run.status.borrow().epoch, Some(0));
}

#[tokio::test(start_paused = true)]
async fn an_old_epoch_that_does_not_exit_is_killed() {
    let run = start(vec![RUN], policy(3));
    // Envoy's timer would end epoch 0 after an hour: too late.
    with(&run.world, |w| {
        w.parent_shutdown = Duration::from_secs(3600)
    });
    sleep(1000).await;
    run.send(Control::HotRestart).await;
    sleep(12_000).await;
    assert!(run.signals(0).is_empty());
    // parent_shutdown (3 s) + kill_grace (10 s) after the handover.
    sleep(2000).await;
    assert_eq!(run.signals(0), vec![Signal::SIGKILL]);
    assert_eq!(run.alive(), vec![1]);
}

#[tokio::test(start_paused = true)]
async fn termination_drains_then_stops() {
    let mut run = start(vec![RUN], policy(3));
    sleep(1000).await;
    run.send(Control::Terminate).await;
    sleep(100).await;
    assert!(run.status.borrow_and_update().draining);
    assert_eq!(with(&run.world, |w| w.drains.clone()), vec![true]);
    sleep(4800).await;
    assert!(run.signals(0).is_empty(), "still inside the drain time");
    let outcome = (&mut run.task).await.expect("join");
    assert_eq!(outcome, Outcome::Stopped);
    assert_eq!(run.signals(0), vec![Signal::SIGTERM]);
}

#[tokio::test(start_paused = true)]
async fn a_second_termination_stops_at_once_and_a_stuck_envoy_is_killed() {
    let stubborn = Script {
        ignores_term: true,
        ..RUN
    };
    let mut run = start(vec![stubborn], policy(3));
    sleep(1000).await;
    run.send(Control::Terminate).await;
    sleep(100).await;
    run.send(Control::Terminate).await;
    sleep(100).await;
    assert_eq!(run.signals(0), vec![Signal::SIGTERM]);
    sleep(10_000).await;
    assert_eq!(run.signals(0), vec![Signal::SIGTERM, Signal::SIGKILL]);
    assert_eq!((&mut run.task).await.expect("join"), Outcome::Stopped);
}

#[tokio::test(start_paused = true)]
async fn exit_on_zero_active_connections_waits_for_the_last_one() {
    let mut p = policy(3);
    p.drain.exit_on_zero_active = true;
    let mut run = start(vec![RUN], p);
    with(&run.world, |w| w.active = 2);
    sleep(1000).await;
    run.send(Control::Terminate).await;
    sleep(20_000).await;
    assert!(run.signals(0).is_empty(), "connections are still open");
    with(&run.world, |w| w.active = 0);
    sleep(1100).await;
    assert_eq!(run.signals(0), vec![Signal::SIGTERM]);
    assert_eq!((&mut run.task).await.expect("join"), Outcome::Stopped);
}

#[tokio::test(start_paused = true)]
async fn zero_connections_still_waits_for_the_minimum_drain() {
    let mut p = policy(3);
    p.drain.exit_on_zero_active = true;
    let run = start(vec![RUN], p);
    sleep(1000).await;
    run.send(Control::Terminate).await;
    sleep(1500).await;
    assert!(run.signals(0).is_empty(), "minimum drain is 2 s");
    sleep(1000).await;
    assert_eq!(run.signals(0), vec![Signal::SIGTERM]);
}

#[tokio::test(start_paused = true)]
async fn quit_stops_without_draining_and_termination_during_backoff_is_immediate() {
    let mut run = start(vec![RUN], policy(3));
    sleep(1000).await;
    run.send(Control::Quit).await;
    assert_eq!((&mut run.task).await.expect("join"), Outcome::Stopped);
    assert!(with(&run.world, |w| w.drains.is_empty()));

    let slow = RestartPolicy {
        initial_backoff: Duration::from_secs(100),
        ..policy(3).restart
    };
    let mut run = start(
        vec![CRASH],
        Policy {
            restart: slow,
            ..policy(3)
        },
    );
    sleep(1000).await;
    run.send(Control::Terminate).await;
    assert_eq!((&mut run.task).await.expect("join"), Outcome::Stopped);
    assert_eq!(run.launches().len(), 1);
}

#[tokio::test(start_paused = true)]
async fn drain_request_keeps_envoy_running() {
    let run = start(vec![RUN], policy(3));
    sleep(1000).await;
    run.send(Control::Drain).await;
    sleep(60_000).await;
    assert!(run.status.borrow().draining);
    assert!(run.signals(0).is_empty());
    assert_eq!(with(&run.world, |w| w.drains.len()), 1);
}
