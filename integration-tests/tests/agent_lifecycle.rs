//! pilot-agent's lifecycle with a real Envoy: hot restart on a watched
//! change without dropping a request, bad bootstraps refused, readiness from
//! first config to drain, graceful termination under load, health-check
//! restarts, and its PID 1 duties.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use integration_tests::binaries::{envoy, workspace_binary};
use integration_tests::discovery::{get_on, Discovery};
use integration_tests::mesh::{Mesh, MeshOptions, PortPlan, REVIEWS_HOST};
use integration_tests::ports::free_port;
use integration_tests::process::{children_of, process_state, Proc};
use integration_tests::wait;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use pilot_agent::http_client;

const DEADLINE: Duration = Duration::from_secs(30);
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

fn examples() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../examples/mesh")
}

fn args(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

fn pid(p: u32) -> Pid {
    Pid::from_raw(i32::try_from(p).expect("pid fits"))
}

/// Sends requests through the sidecar until stopped, counting answers.
struct Load {
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<(usize, Vec<String>)>,
}

impl Load {
    fn start(mesh: &Mesh) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let listener = mesh.listener();
        let flag = stop.clone();
        let task = tokio::spawn(async move {
            let (mut ok, mut errors) = (0, Vec::new());
            while !flag.load(Ordering::Relaxed) {
                // A fresh connection each time: the handover of listening
                // sockets between epochs is what is under test.
                match http_client::get(listener, REVIEWS_HOST, "/", REQUEST_TIMEOUT).await {
                    Ok(r) if r.status == 200 => ok += 1,
                    Ok(r) => errors.push(format!("HTTP {}: {}", r.status, r.body.trim())),
                    Err(e) => errors.push(e.to_string()),
                }
            }
            (ok, errors)
        });
        Load { stop, task }
    }

    async fn finish(self) -> (usize, Vec<String>) {
        self.stop.store(true, Ordering::Relaxed);
        self.task.await.expect("load task")
    }
}

async fn epoch(mesh: &Mesh) -> Result<u32, String> {
    mesh.admin()
        .server_info()
        .await
        .map(|i| i.epoch)
        .map_err(|e| e.to_string())
}

/// Touching a watched file moves Envoy to epoch 1 while a request loop runs;
/// not one request fails, and the old epoch exits by itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watched_change_hot_restarts_envoy_without_failing_a_request() {
    let certs = tempfile::tempdir().expect("tempdir");
    let cert = certs.path().join("cert-chain.pem");
    std::fs::write(&cert, "first").expect("write");
    let mesh = Mesh::start_opts(
        &examples(),
        PortPlan::Free,
        MeshOptions {
            agent_args: vec![
                "--watch".into(),
                cert.display().to_string(),
                "--drain-duration".into(),
                "2s".into(),
                "--parent-shutdown-duration".into(),
                "3s".into(),
            ],
            ..MeshOptions::default()
        },
    )
    .await
    .expect("the example mesh starts");
    let agent = mesh.agent.pid();
    let first = children_of(agent);
    assert_eq!(first.len(), 1, "one Envoy before: {first:?}");
    let first = first[0];

    let load = Load::start(&mesh);
    std::fs::write(&cert, "second").expect("rewrite the watched file");
    wait::until("Envoy at epoch 1", DEADLINE, || async {
        Ok((epoch(&mesh).await? == 1).then_some(()))
    })
    .await
    .expect("hot restart");
    wait::until("the old epoch to exit", DEADLINE, || {
        let now = children_of(agent);
        async move { Ok((now.len() == 1 && now[0] != first).then_some(())) }
    })
    .await
    .expect("epoch 0 drains and exits");
    let (ok, errors) = load.finish().await;
    assert!(
        errors.is_empty(),
        "{} failed requests: {:?}",
        errors.len(),
        &errors[..errors.len().min(5)]
    );
    assert!(ok > 20, "only {ok} requests ran during the hot restart");

    let metrics = mesh
        .status_get("/stats/prometheus")
        .await
        .expect("metrics")
        .body;
    assert!(
        metrics.contains("\npilot_agent_hot_restarts 1\n"),
        "{metrics}"
    );
    assert!(
        metrics.contains("\npilot_agent_envoy_epoch 1\n"),
        "{metrics}"
    );
    assert!(mesh.agent.log().contains("hot-restarting Envoy"));
}

/// A bootstrap change Envoy would reject is refused before any new epoch
/// starts; a good change afterwards goes through and takes effect.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_bootstrap_is_refused_and_a_good_one_applied() {
    let dir = tempfile::tempdir().expect("tempdir");
    let over = dir.path().join("override.yaml");
    std::fs::write(&over, "{}\n").expect("write");
    let mesh = Mesh::start_opts(
        &examples(),
        PortPlan::Free,
        MeshOptions {
            agent_args: vec![
                "--bootstrap-override".into(),
                over.display().to_string(),
                "--parent-shutdown-duration".into(),
                "2s".into(),
            ],
            ..MeshOptions::default()
        },
    )
    .await
    .expect("the example mesh starts");
    let bootstrap = mesh.work_dir().join("proxy/envoy-rev.json");
    let good = std::fs::read_to_string(&bootstrap).expect("bootstrap");

    std::fs::write(&over, "node: {no_such_field: 1}\n").expect("write");
    wait::until("the bad bootstrap to be refused", DEADLINE, || {
        let log = mesh.agent.log();
        async move { Ok(log.contains("new bootstrap rejected").then_some(())) }
    })
    .await
    .expect("refused");
    let log = mesh.agent.log();
    assert!(
        log.contains("no_such_field"),
        "Envoy's reason is logged: {log}"
    );
    assert_eq!(epoch(&mesh).await, Ok(0));
    assert_eq!(
        std::fs::read_to_string(&bootstrap).expect("bootstrap"),
        good
    );
    assert!(!mesh.work_dir().join("proxy/envoy-rev.next.json").exists());

    std::fs::write(
        &over,
        "layered_runtime:\n  layers:\n  - name: from-override\n    static_layer: {pilot.test.marker: 42}\n",
    )
    .expect("write");
    wait::until("Envoy at epoch 1", DEADLINE, || async {
        Ok((epoch(&mesh).await? == 1).then_some(()))
    })
    .await
    .expect("hot restart");
    let admin = std::net::SocketAddr::from(([127, 0, 0, 1], mesh.ports.admin));
    let runtime = http_client::get(admin, "127.0.0.1", "/runtime", REQUEST_TIMEOUT)
        .await
        .expect("runtime");
    assert!(
        runtime.body.contains("pilot.test.marker"),
        "{}",
        runtime.body
    );
}

/// Starts an agent towards `discovery_port`, where nothing may listen yet.
fn lone_agent(work: &Path, discovery_port: u16, ports: &LonePorts, extra: &[&str]) -> Proc {
    let mut cmd = Command::new(workspace_binary("pilot-agent").expect("agent"));
    cmd.args(["proxy", "sidecar"])
        .args([
            "--discovery-address",
            &format!("127.0.0.1:{discovery_port}"),
        ])
        .arg("--envoy-binary")
        .arg(envoy().expect("envoy"))
        .arg("--config-path")
        .arg(work.join("proxy"))
        .args(["--admin-port", &ports.admin.to_string()])
        .args(["--status-port", &ports.status.to_string()])
        .args(["--readiness-port", &ports.readiness.to_string()])
        .args(["--stats-port", &ports.stats.to_string()])
        .args(["--bind-address", "127.0.0.1"])
        .args(["--concurrency", "1"])
        .args(extra)
        .env("POD_NAME", "productpage-v1-0")
        .env("POD_NAMESPACE", "default")
        .env("INSTANCE_IP", "127.0.0.1")
        .env("ISTIO_META_INTERCEPTION_MODE", "NONE");
    Proc::spawn("pilot-agent", cmd, &work.join("agent.log")).expect("agent starts")
}

struct LonePorts {
    admin: u16,
    status: u16,
    readiness: u16,
    stats: u16,
}

async fn get(port: u16, path: &str) -> Result<http_client::Response, String> {
    get_on(port, path).await.map_err(|e| e.to_string())
}

fn run_wait(url: &str, timeout: &str) -> std::process::ExitStatus {
    Command::new(workspace_binary("pilot-agent").expect("agent"))
        .args([
            "wait",
            "--url",
            url,
            "--timeout",
            timeout,
            "--period",
            "100ms",
        ])
        .status()
        .expect("pilot-agent wait runs")
}

/// Readiness is false (with the reason) before discovery answers, true once
/// Envoy has its config, on the status port and through Envoy's readiness
/// listener alike, and false as soon as a drain starts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_follows_config_and_drain() {
    let work = tempfile::tempdir().expect("tempdir");
    let grpc = free_port().expect("port");
    let ports = LonePorts {
        admin: free_port().expect("port"),
        status: free_port().expect("port"),
        readiness: free_port().expect("port"),
        stats: free_port().expect("port"),
    };
    let mut agent = lone_agent(
        work.path(),
        grpc,
        &ports,
        &["--termination-drain-duration", "3s"],
    );

    let reason = wait::until("a not-ready answer from Envoy's state", DEADLINE, || {
        let running = agent.check_running();
        async move {
            running?;
            let r = get(ports.status, "/healthz/ready").await?;
            Ok((r.status == 503 && r.body.contains("Envoy is")).then_some(r.body))
        }
    })
    .await
    .expect("not ready before config");
    assert!(
        reason.contains("PRE_INITIALIZING") || reason.contains("INITIALIZING"),
        "{reason}"
    );
    let url = format!("http://127.0.0.1:{}/healthz/ready", ports.readiness);
    assert!(
        !run_wait(&url, "500ms").success(),
        "wait fails before config"
    );

    let config = work.path().join("config");
    std::fs::create_dir_all(&config).expect("mkdir");
    for entry in std::fs::read_dir(examples()).expect("examples") {
        let path = entry.expect("entry").path();
        if path.is_file() {
            std::fs::copy(&path, config.join(path.file_name().expect("name"))).expect("copy");
        }
    }
    let _discovery = Discovery::start_on(grpc, &config, &work.path().join("discovery.log"), &[])
        .await
        .expect("discovery starts");

    assert!(run_wait(&url, "30s").success(), "wait succeeds once ready");
    let through_envoy = get(ports.readiness, "/healthz/ready").await.expect("ready");
    assert_eq!(through_envoy.status, 200, "{}", through_envoy.body);
    let direct = get(ports.status, "/healthz/ready").await.expect("ready");
    assert_eq!(direct.status, 200, "{}", direct.body);
    let prom = get(ports.stats, "/stats/prometheus")
        .await
        .expect("envoy stats");
    assert!(
        prom.body.contains(r#"cluster_name="xds-grpc""#),
        "stats tags name clusters"
    );
    let merged = get(ports.status, "/stats/prometheus")
        .await
        .expect("agent stats");
    assert!(merged.body.contains("\npilot_agent_ready 1\n"));
    assert!(
        merged.body.contains("envoy_server_live"),
        "Envoy's metrics follow"
    );

    // Commands are refused from outside loopback; loopback is all a test
    // can reach, so that rule is covered by the status server's unit test.
    agent.signal(Signal::SIGTERM);
    let body = wait::until("not ready while draining", DEADLINE, || async {
        let r = get(ports.status, "/healthz/ready").await?;
        Ok((r.status == 503).then_some(r.body))
    })
    .await
    .expect("draining");
    assert!(body.contains("draining"), "{body}");
    let status = agent
        .wait_exit(DEADLINE)
        .expect("the agent exits after the drain");
    assert!(status.success(), "{status}");
}

/// SIGTERM while requests are in flight: they all finish, and the agent
/// exits 0 within the termination drain plus Envoy's stop.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_under_load_lets_in_flight_requests_finish() {
    let mut mesh = Mesh::start_opts(
        &examples(),
        PortPlan::Free,
        MeshOptions {
            agent_args: args(&["--termination-drain-duration", "3s"]),
            ..MeshOptions::default()
        },
    )
    .await
    .expect("the example mesh starts");
    let listener = mesh.listener();
    let in_flight: Vec<Arc<AtomicUsize>> =
        mesh.upstreams.iter().map(|u| u.in_flight.clone()).collect();
    let requests: Vec<_> = (0..4)
        .map(|_| {
            tokio::spawn(async move {
                http_client::get(listener, REVIEWS_HOST, "/delay/1500", REQUEST_TIMEOUT).await
            })
        })
        .collect();
    wait::until("four requests in flight", DEADLINE, || {
        let n: usize = in_flight.iter().map(|c| c.load(Ordering::SeqCst)).sum();
        async move { Ok((n == 4).then_some(())) }
    })
    .await
    .expect("requests reach the upstreams");

    mesh.agent.signal(Signal::SIGTERM);
    for r in requests {
        let r = r
            .await
            .expect("join")
            .expect("the in-flight request completes");
        assert_eq!(r.status, 200, "{}", r.body);
    }
    // 3 s of drain, then Envoy stops on SIGTERM; SIGKILL would come after 10 s more.
    let status = mesh
        .agent
        .wait_exit(Duration::from_secs(12))
        .expect("the agent exits within the drain settings");
    assert!(status.success(), "{status}");
    let log = mesh.agent.log();
    assert!(log.contains("Envoy's listeners are draining"), "{log}");
}

/// A stopped (wedged) Envoy fails its health checks and is replaced.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wedged_envoy_fails_health_checks_and_is_replaced() {
    let mut mesh = Mesh::start_opts(
        &examples(),
        PortPlan::Free,
        MeshOptions {
            agent_args: args(&[
                "--health-check-interval",
                "300ms",
                "--health-failure-threshold",
                "2",
            ]),
            ..MeshOptions::default()
        },
    )
    .await
    .expect("the example mesh starts");
    let agent = mesh.agent.pid();
    let old = children_of(agent)[0];
    // The agent must have seen Envoy healthy first, or a stop would look
    // like a slow start (which has a grace period).
    wait::until("the agent's probe to see Envoy LIVE", DEADLINE, || async {
        let m = mesh
            .status_get("/stats/prometheus")
            .await
            .map_err(|e| e.to_string())?;
        Ok(m.body
            .contains("\npilot_agent_envoy_live 1\n")
            .then_some(()))
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", mesh.agent.log()));
    kill(pid(old), Signal::SIGSTOP).expect("SIGSTOP Envoy");
    let new = wait::until("a new Envoy under the agent", DEADLINE, || {
        let now = children_of(agent);
        async move { Ok(now.into_iter().find(|p| *p != old)) }
    })
    .await
    .unwrap_or_else(|e| panic!("Envoy not replaced: {e}\n{}", mesh.agent.log()));
    assert_ne!(new, old);
    mesh.wait_routing(REVIEWS_HOST, |b| b == "v1" || b == "v2", DEADLINE)
        .await
        .expect("traffic flows through the new Envoy");
    let log = mesh.agent.log();
    assert!(log.contains("health checks in a row"), "{log}");
}

/// The agent reaps orphans its Envoy leaves behind, and Envoy dies with the
/// agent even when the agent is killed with SIGKILL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orphans_are_reaped_and_envoy_dies_with_the_agent() {
    let dir = tempfile::tempdir().expect("tempdir");
    let wrapper = dir.path().join("envoy-with-orphan");
    // The inner shell backgrounds a sleep and exits at once: the sleep is
    // orphaned, re-parented to the agent (a subreaper), and must be reaped
    // when it ends. Then the wrapper becomes Envoy.
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\nsh -c 'sleep 0.3 &'\nexec '{}' \"$@\"\n",
            envoy().expect("envoy").display()
        ),
    )
    .expect("write wrapper");
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    }
    let mesh = Mesh::start_opts(
        &examples(),
        PortPlan::Free,
        MeshOptions {
            envoy_binary: Some(wrapper),
            ..MeshOptions::default()
        },
    )
    .await
    .expect("the mesh starts with the wrapper");
    let agent = mesh.agent.pid();
    let envoy_pid = wait::until(
        "Envoy as the agent's only child, no zombies",
        DEADLINE,
        || {
            let children = children_of(agent);
            async move {
                let zombies: Vec<u32> = children
                    .iter()
                    .copied()
                    .filter(|c| process_state(*c) == Some('Z'))
                    .collect();
                if !zombies.is_empty() {
                    return Err(format!("zombie children {zombies:?}"));
                }
                Ok((children.len() == 1).then(|| children[0]))
            }
        },
    )
    .await
    .expect("the orphan was reaped");

    kill(pid(agent), Signal::SIGKILL).expect("kill -9 the agent");
    wait::until("Envoy to die with the agent", DEADLINE, || async move {
        Ok(matches!(process_state(envoy_pid), None | Some('Z')).then_some(()))
    })
    .await
    .expect("PR_SET_PDEATHSIG ended Envoy");
}
