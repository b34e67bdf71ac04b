//! Child processes that are always cleaned up.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context;
use nix::sys::signal::{kill, killpg, Signal};
use nix::unistd::Pid;

/// A running process in its own process group. Dropping it stops the whole
/// group (an agent and its Envoy alike): SIGTERM, then SIGKILL after a grace
/// period.
pub struct Proc {
    name: String,
    child: Child,
    log: PathBuf,
}

const GRACE: Duration = Duration::from_secs(5);

impl Proc {
    /// Starts `cmd` with stdout and stderr going to `log`.
    pub fn spawn(name: &str, mut cmd: Command, log: &Path) -> anyhow::Result<Proc> {
        use std::os::unix::process::CommandExt;
        let out = File::create(log).with_context(|| format!("cannot create {}", log.display()))?;
        let err = out.try_clone()?;
        cmd.stdin(Stdio::null())
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(err))
            .process_group(0);
        let child = cmd
            .spawn()
            .with_context(|| format!("cannot start {name} ({:?})", cmd.get_program()))?;
        Ok(Proc {
            name: name.to_string(),
            child,
            log: log.to_path_buf(),
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// `Some(status)` if the process has exited.
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// Fails if the process has exited, quoting the end of its log.
    pub fn check_running(&mut self) -> Result<(), String> {
        match self.exited() {
            None => Ok(()),
            Some(status) => {
                let log = self.log();
                let tail: Vec<&str> = log.lines().rev().take(15).collect();
                let tail: Vec<&str> = tail.into_iter().rev().collect();
                Err(format!(
                    "{} exited ({status}); last log lines:\n{}",
                    self.name,
                    tail.join("\n")
                ))
            }
        }
    }

    fn signal_group(&self, sig: Signal) {
        if let Ok(pid) = i32::try_from(self.child.id()) {
            let _ = killpg(Pid::from_raw(pid), sig);
        }
    }

    /// Sends `sig` to the process alone, not its group.
    pub fn signal(&self, sig: Signal) {
        if let Ok(pid) = i32::try_from(self.child.id()) {
            let _ = kill(Pid::from_raw(pid), sig);
        }
    }

    /// Sends SIGTERM to the process alone, not its group, and waits up to the
    /// grace period for it to exit: shows whether it stops its own children.
    pub fn terminate(&mut self) -> Option<std::process::ExitStatus> {
        self.signal(Signal::SIGTERM);
        self.wait_exit(GRACE)
    }

    /// Waits up to `grace` for the process to exit.
    pub fn wait_exit(&mut self, grace: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + grace;
        loop {
            if let Some(status) = self.exited() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Stops the process group and waits for the process to exit.
    pub fn stop(&mut self) -> Option<std::process::ExitStatus> {
        if let Some(status) = self.exited() {
            self.signal_group(Signal::SIGKILL); // strays left in the group
            return Some(status);
        }
        self.signal_group(Signal::SIGTERM);
        let status = self.wait_exit(GRACE);
        // Also reaps strays left in the group once the leader has exited.
        self.signal_group(Signal::SIGKILL);
        status.or_else(|| self.child.wait().ok())
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.stop();
    }
}

/// `/proc/<pid>/stat` after the command name: "state ppid ...". The name
/// may hold spaces, so the split is at the last ')'.
fn stat_fields(pid: u32) -> Option<Vec<String>> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 1..];
    Some(rest.split_whitespace().map(str::to_string).collect())
}

/// The process state letter (`R`, `S`, `Z` for a zombie...), or `None` once
/// the process is gone.
pub fn process_state(pid: u32) -> Option<char> {
    stat_fields(pid)?.first()?.chars().next()
}

/// The processes whose parent is `pid`, from `/proc`.
pub fn children_of(pid: u32) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|child| {
            stat_fields(*child).and_then(|f| f.get(1)?.parse::<u32>().ok()) == Some(pid)
        })
        .collect()
}

/// Kills (SIGKILL) the one child of `parent`, as a crash would, and waits
/// until another child takes its place; returns (killed, replacement).
pub async fn kill_child_and_await_replacement(
    parent: u32,
    deadline: Duration,
) -> anyhow::Result<(u32, u32)> {
    let before = children_of(parent);
    anyhow::ensure!(
        before.len() == 1,
        "expected one child of {parent}: {before:?}"
    );
    let old = before[0];
    kill(Pid::from_raw(i32::try_from(old)?), Signal::SIGKILL)
        .with_context(|| format!("kill -9 {old}"))?;
    let new = crate::wait::until("a new child in place of the killed one", deadline, || {
        let now = children_of(parent);
        async move { Ok(now.into_iter().find(|p| *p != old)) }
    })
    .await?;
    Ok((old, new))
}
