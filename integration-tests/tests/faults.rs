//! The mesh keeps serving while its parts fail: Envoy keeps its last config
//! through a discovery outage, picks up what changed meanwhile when
//! discovery returns, and the agent brings back an Envoy killed during the
//! outage. Real discovery, agent and Envoy, killed with SIGKILL.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use integration_tests::client::Call;
use integration_tests::echo::EchoServer;
use integration_tests::ports::free_port;
use integration_tests::process::kill_child_and_await_replacement;
use integration_tests::traffic::{host, versioned_shop, virtual_service, TrafficMesh};
use integration_tests::wait;

const DEADLINE: Duration = Duration::from_secs(30);

fn all_to(subset: &str) -> String {
    virtual_service(
        "shop",
        &format!("  - route: [{{destination: {{host: shop, subset: {subset}}}}}]\n"),
    )
}

/// Service `shop` with versions v1 and v2, all traffic to v1.
async fn shop() -> (TrafficMesh, u16, [EchoServer; 2]) {
    let v1 = EchoServer::plain("v1").await.expect("echo server");
    let v2 = EchoServer::plain("v2").await.expect("echo server");
    let port = free_port().expect("port");
    let files = versioned_shop(port, &v1, &v2, [("shop-vs.yaml", all_to("v1"))]);
    let mut mesh = TrafficMesh::start(&files).await.expect("mesh starts");
    mesh.wait_for("v1", port, &Call::get(&host("shop"), "/"), |r| {
        r.who() == "v1"
    })
    .await
    .expect("routes");
    (mesh, port, [v1, v2])
}

/// Requests sent one after another until stopped, counting the replies
/// that are not a 200 (or not a reply at all).
struct Loop {
    stop: Arc<AtomicBool>,
    ok: Arc<AtomicUsize>,
    failed: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<Vec<String>>,
}

impl Loop {
    fn start(port: u16) -> Loop {
        let (stop, ok, failed) = (
            Arc::new(AtomicBool::new(false)),
            Arc::new(AtomicUsize::new(0)),
            Arc::new(AtomicUsize::new(0)),
        );
        let (s, o, f) = (stop.clone(), ok.clone(), failed.clone());
        let task = tokio::spawn(async move {
            let call = Call::get(&host("shop"), "/");
            let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
            let mut failures = Vec::new();
            while !s.load(Ordering::Relaxed) {
                match call.send(addr).await {
                    Ok(r) if r.status == 200 => {
                        o.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(r) => {
                        f.fetch_add(1, Ordering::Relaxed);
                        failures.push(format!("HTTP {} {}", r.status, r.body.trim()));
                    }
                    Err(e) => {
                        f.fetch_add(1, Ordering::Relaxed);
                        failures.push(format!("{e:#}"));
                    }
                }
            }
            failures
        });
        Loop {
            stop,
            ok,
            failed,
            task,
        }
    }

    /// Waits until `n` more requests have succeeded than when called.
    async fn until_more_succeed(&self, n: usize, what: &str) {
        let target = self.ok.load(Ordering::Relaxed) + n;
        wait::until(what, DEADLINE, || async {
            Ok((self.ok.load(Ordering::Relaxed) >= target).then_some(()))
        })
        .await
        .expect("requests keep succeeding");
    }

    async fn finish(self) -> (usize, Vec<String>) {
        self.stop.store(true, Ordering::Relaxed);
        let failures = self.task.await.expect("request loop");
        assert_eq!(failures.len(), self.failed.load(Ordering::Relaxed));
        (self.ok.load(Ordering::Relaxed), failures)
    }
}

/// Discovery killed under a steady stream of requests: not one fails while
/// it is down, and once it is back the proxy reconnects and receives the
/// change made during the outage.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_discovery_outage_fails_no_request_and_what_changed_meanwhile_arrives() {
    let (mut mesh, port, _servers) = shop().await;
    let requests = Loop::start(port);
    requests
        .until_more_succeed(20, "requests before the outage")
        .await;

    mesh.kill_discovery().expect("discovery killed");
    requests
        .until_more_succeed(100, "requests during the outage")
        .await;
    mesh.write("shop-vs.yaml", &all_to("v2")).expect("write");
    requests
        .until_more_succeed(50, "requests after the edit, still down")
        .await;

    mesh.restart_discovery().await.expect("discovery restarts");
    mesh.wait_for(
        "the change made during the outage",
        port,
        &Call::get(&host("shop"), "/"),
        |r| r.who() == "v2",
    )
    .await
    .expect("the proxy resyncs");
    requests
        .until_more_succeed(20, "requests after the resync")
        .await;
    let (ok, failures) = requests.finish().await;
    assert!(
        failures.is_empty(),
        "{} of {ok} failed: {failures:?}",
        failures.len()
    );
    mesh.ensure_nothing_rejected()
        .await
        .expect("Envoy took all");
}

/// Envoy killed while discovery is down: the agent starts a new Envoy at
/// once, which has no config to serve until discovery returns, and then
/// serves.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_envoy_killed_during_the_outage_is_back_and_serves_when_discovery_returns() {
    let (mut mesh, port, _servers) = shop().await;
    mesh.kill_discovery().expect("discovery killed");
    kill_child_and_await_replacement(mesh.agent.pid(), DEADLINE)
        .await
        .expect("the agent restarts Envoy without discovery");
    mesh.agent.check_running().expect("the agent keeps running");

    mesh.restart_discovery().await.expect("discovery restarts");
    mesh.wait_for(
        "the new Envoy serving",
        port,
        &Call::get(&host("shop"), "/"),
        |r| r.who() == "v1",
    )
    .await
    .expect("the new Envoy serves once discovery is back");
    let log = mesh.agent.log();
    assert!(log.contains("restarting Envoy"), "{log}");
}
