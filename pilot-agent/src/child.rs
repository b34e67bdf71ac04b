//! How the agent starts Envoy: in its own process group, so a Ctrl-C at a
//! terminal reaches the agent alone and the agent decides how Envoy stops;
//! and bound to the agent's life, so an agent killed with SIGKILL never
//! leaves an Envoy behind holding the pod's ports.

use std::process::Command;

use crate::reaper::{self, Spawned};

/// Starts `cmd` as a supervised child (see the module docs).
pub fn spawn(cmd: &mut Command) -> std::io::Result<Spawned> {
    use std::os::unix::process::CommandExt;

    let parent = nix::unistd::getpid();
    cmd.process_group(0);
    // SAFETY: the closure runs in the child between fork and exec, where only
    // async-signal-safe calls are allowed. It makes two system calls (prctl,
    // getppid) and allocates nothing.
    #[allow(unsafe_code)]
    unsafe {
        cmd.pre_exec(move || {
            nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL)?;
            // The agent may have died between fork and prctl; the signal
            // would then never come.
            if nix::unistd::getppid() != parent {
                return Err(std::io::Error::other(
                    "the agent exited while starting Envoy",
                ));
            }
            Ok(())
        });
    }
    reaper::spawn(cmd)
}

/// Makes the agent the reaper of any process its children leave behind, as it
/// would be as a container's PID 1, so orphans never linger as zombies.
pub fn become_subreaper() -> nix::Result<()> {
    nix::sys::prctl::set_child_subreaper(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn runs_in_its_own_process_group() {
        let s =
            spawn(Command::new("sh").args(["-c", "test $(ps -o pgid= -p $$) -eq $$"])).expect("sh");
        assert_eq!(s.exit.await.expect("status").code(), Some(0));
    }

    #[tokio::test]
    async fn a_missing_binary_is_an_error_not_a_panic() {
        for _ in 0..20 {
            let e = spawn(&mut Command::new("/nonexistent/envoy")).expect_err("missing");
            assert_eq!(e.kind(), std::io::ErrorKind::NotFound);
        }
    }
}
