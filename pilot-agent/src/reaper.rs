//! Collects the exit status of every child of the agent, including orphans
//! that the kernel re-parents to it (it runs as PID 1 in a container, and
//! marks itself a child subreaper elsewhere).
//!
//! One thread owns all waiting. It blocks in `waitid(P_ALL, WNOWAIT)` to learn
//! which child became waitable without reaping it, then decides under the
//! registry lock: a registered child is reaped and its status delivered; an
//! unknown one (an orphan) is reaped and logged. Peeking first matters:
//! `std::process::Command::spawn` reaps a child whose `exec` failed by itself,
//! and a blind `waitpid(-1)` racing with it would make that wait fail.
//!
//! Because this thread waits for every child, nothing else in the process may
//! wait for children: spawn them through [`spawn`].

use std::collections::HashMap;
use std::os::unix::process::ExitStatusExt;
use std::process::{Child, Command, ExitStatus};
use std::sync::{Condvar, Mutex, MutexGuard, OnceLock};
use std::time::Duration;

use nix::errno::Errno;
use nix::sys::wait::{waitid, waitpid, Id, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;
use tokio::sync::oneshot;

/// How long the reaper sleeps when it has no children before looking again
/// for orphans that may have been re-parented to it.
const IDLE_RECHECK: Duration = Duration::from_secs(1);

struct Registry {
    waiting: Mutex<HashMap<i32, oneshot::Sender<ExitStatus>>>,
    wake: Condvar,
}

fn registry() -> &'static Registry {
    static REGISTRY: OnceLock<&'static Registry> = OnceLock::new();
    REGISTRY.get_or_init(|| {
        let r: &'static Registry = Box::leak(Box::new(Registry {
            waiting: Mutex::new(HashMap::new()),
            wake: Condvar::new(),
        }));
        // The thread lives as long as the process; if it cannot start, no
        // exit would ever be seen, so failing loudly is the only safe choice.
        std::thread::Builder::new()
            .name("reaper".into())
            .spawn(move || reap_forever(r))
            .expect("cannot start the reaper thread");
        r
    })
}

fn lock(r: &Registry) -> MutexGuard<'_, HashMap<i32, oneshot::Sender<ExitStatus>>> {
    // A panic while holding this lock cannot leave the map inconsistent
    // (single inserts and removes), so a poisoned lock is still usable.
    r.waiting.lock().unwrap_or_else(|p| p.into_inner())
}

/// A child started through [`spawn`].
#[derive(Debug)]
pub struct Spawned {
    pub pid: u32,
    /// Pipes the caller asked for; the process itself is never waited on here.
    pub child: Child,
    /// Resolves with the exit status once the reaper has collected it.
    pub exit: oneshot::Receiver<ExitStatus>,
}

/// Starts `cmd` and registers it with the reaper.
pub fn spawn(cmd: &mut Command) -> std::io::Result<Spawned> {
    let r = registry();
    let (tx, rx) = oneshot::channel();
    // Holding the lock across spawn means the reaper cannot look up the new
    // pid before it is registered, however fast the child exits.
    let mut waiting = lock(r);
    let child = cmd.spawn()?;
    let pid = child.id();
    if let Ok(p) = i32::try_from(pid) {
        waiting.insert(p, tx);
    }
    drop(waiting);
    r.wake.notify_one();
    Ok(Spawned {
        pid,
        child,
        exit: rx,
    })
}

fn reap_forever(r: &'static Registry) {
    loop {
        match waitid(Id::All, WaitPidFlag::WEXITED | WaitPidFlag::WNOWAIT) {
            Ok(status) => {
                if let Some(pid) = status.pid() {
                    collect(r, pid);
                }
            }
            Err(Errno::EINTR) => {}
            Err(Errno::ECHILD) => {
                let waiting = lock(r);
                if waiting.is_empty() {
                    let _ = r.wake.wait_timeout(waiting, IDLE_RECHECK);
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "waiting for child processes failed");
                std::thread::sleep(IDLE_RECHECK);
            }
        }
    }
}

/// Reaps `pid`, which is known to be waitable, and hands its status on.
fn collect(r: &Registry, pid: Pid) {
    let mut waiting = lock(r);
    let status = match waitpid(pid, Some(WaitPidFlag::WNOHANG)) {
        Ok(WaitStatus::Exited(_, code)) => ExitStatus::from_raw((code & 0xff) << 8),
        Ok(WaitStatus::Signaled(_, sig, core)) => {
            ExitStatus::from_raw(sig as i32 | if core { 0x80 } else { 0 })
        }
        // Already collected (by `Command::spawn` after a failed exec) or
        // not an exit: nothing to deliver.
        Ok(_) | Err(_) => return,
    };
    match waiting.remove(&pid.as_raw()) {
        Some(tx) => {
            let _ = tx.send(status);
        }
        None => tracing::debug!(pid = pid.as_raw(), %status, "reaped an orphaned process"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn exit_codes_and_signals_are_delivered() {
        let s = spawn(Command::new("sh").args(["-c", "exit 7"])).expect("sh");
        assert_eq!(s.exit.await.expect("status").code(), Some(7));

        let s = spawn(Command::new("sleep").arg("30")).expect("sleep");
        nix::sys::signal::kill(
            Pid::from_raw(i32::try_from(s.pid).expect("pid")),
            nix::sys::signal::Signal::SIGKILL,
        )
        .expect("kill");
        assert_eq!(s.exit.await.expect("status").signal(), Some(9));
    }
}
