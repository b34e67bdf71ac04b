//! pilot-agent keeps Envoy serving: a killed Envoy comes back, a crash loop
//! ends with a clear non-zero exit. Real agent, real Envoy.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use integration_tests::binaries::{envoy, workspace_binary};
use integration_tests::mesh::{Mesh, PortPlan, REVIEWS_HOST};
use integration_tests::ports::free_port;
use integration_tests::process::{kill_child_and_await_replacement, Proc};

const DEADLINE: Duration = Duration::from_secs(30);

fn examples() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../examples/mesh")
}

/// kill -9 of Envoy: the agent starts a new one, which gets its config from
/// discovery again and routes traffic.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_envoy_is_restarted_and_serves_again() {
    let mut mesh = Mesh::start(&examples(), PortPlan::Free)
        .await
        .expect("the example mesh starts");
    let (old, new) = kill_child_and_await_replacement(mesh.agent.pid(), DEADLINE)
        .await
        .expect("Envoy restarted");
    assert_ne!(new, old);
    mesh.wait_routing(REVIEWS_HOST, |b| b == "v1" || b == "v2", DEADLINE)
        .await
        .expect("traffic flows through the new Envoy");
    mesh.agent
        .check_running()
        .expect("the agent is still running");
    let log = mesh.agent.log();
    assert!(log.contains("restarting Envoy"), "{log}");
}

/// An Envoy that cannot start (its bootstrap, through an override, has a
/// field Envoy does not know) spends the restart budget and the agent exits
/// non-zero, saying why, in bounded time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_loop_spends_the_budget_and_exits_non_zero() {
    let work = tempfile::tempdir().expect("tempdir");
    let over = work.path().join("override.yaml");
    std::fs::write(&over, "node: {no_such_field: 1}\n").expect("write override");
    let mut cmd = Command::new(workspace_binary("pilot-agent").expect("agent"));
    cmd.args(["proxy", "sidecar"])
        .args(["--discovery-address", "127.0.0.1:9"])
        .arg("--envoy-binary")
        .arg(envoy().expect("envoy"))
        .arg("--config-path")
        .arg(work.path().join("proxy"))
        .args(["--admin-port", &free_port().expect("port").to_string()])
        .args(["--status-port", "0"])
        .args(["--stats-port", "0"])
        .args(["--readiness-port", "0"])
        .arg("--bootstrap-override")
        .arg(&over)
        .args(["--restart-budget", "3"])
        .args(["--restart-initial-backoff", "10ms"])
        .args(["--restart-max-backoff", "50ms"])
        .env("POD_NAME", "crashy-0")
        .env("POD_NAMESPACE", "default")
        .env("INSTANCE_IP", "127.0.0.1");
    let mut agent =
        Proc::spawn("pilot-agent", cmd, &work.path().join("agent.log")).expect("agent starts");
    let status = agent
        .wait_exit(DEADLINE)
        .expect("the agent gives up in time");
    assert!(!status.success(), "exit status {status}");
    let log = agent.log();
    assert!(
        log.contains("giving up: Envoy failed again after 3 restarts (restart budget 3)"),
        "{log}"
    );
    assert_eq!(log.matches("starting Envoy again").count(), 3, "{log}");
}
