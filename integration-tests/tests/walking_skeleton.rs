//! The walking skeleton end to end: the example config folder served by a
//! real pilot-discovery to a real Envoy started by pilot-agent, checked by
//! real requests.

use std::path::PathBuf;
use std::time::Duration;

use integration_tests::mesh::{dump_section, Mesh, PortPlan, RATINGS_HOST, REVIEWS_HOST};
use integration_tests::wait;
use serde_json::Value;

const DEADLINE: Duration = Duration::from_secs(20);

fn examples() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../examples/mesh")
}

async fn start() -> Mesh {
    Mesh::start(&examples(), PortPlan::Free)
        .await
        .expect("the example mesh starts")
}

fn share(counts: &std::collections::BTreeMap<String, usize>, key: &str) -> f64 {
    let total: usize = counts.values().sum();
    counts.get(key).copied().unwrap_or(0) as f64 / total as f64
}

/// (a) Envoy reaches LIVE with the clusters discovery built, named as Istio names them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn envoy_goes_live_with_istio_named_clusters() {
    let mesh = start().await;
    assert_eq!(mesh.envoy_state().await.expect("admin"), "LIVE");
    let dump = mesh.config_dump().await.expect("config_dump");
    let clusters: Vec<&str> = dump_section(&dump, "ClustersConfigDump", "dynamic_active_clusters")
        .into_iter()
        .filter_map(|c| c["cluster"]["name"].as_str())
        .collect();
    let port = mesh.ports.service;
    for expected in [
        format!("outbound|{port}|v1|{REVIEWS_HOST}"),
        format!("outbound|{port}|v2|{REVIEWS_HOST}"),
        format!("outbound|{port}||{REVIEWS_HOST}"),
        format!("outbound|{port}||{RATINGS_HOST}"),
        "BlackHoleCluster".to_string(),
        "PassthroughCluster".to_string(),
    ] {
        assert!(
            clusters.contains(&expected.as_str()),
            "{expected} missing from {clusters:?}"
        );
    }
    let listeners: Vec<&str> = dump_section(&dump, "ListenersConfigDump", "dynamic_listeners")
        .into_iter()
        .filter_map(|l| l["name"].as_str())
        .collect();
    assert_eq!(listeners, vec![format!("127.0.0.1_{port}")]);
    // The Kubernetes Service + EndpointSlice path routes too, by every Host form.
    for host in [
        RATINGS_HOST.to_string(),
        format!("ratings:{port}"),
        "ratings.default".into(),
    ] {
        let r = mesh.request(&host).await.expect("request");
        assert_eq!((r.status, r.body.trim()), (200, "ratings"), "Host: {host}");
    }
    // An unknown host goes to the passthrough vhost, not to a service.
    let r = mesh.request("unknown.example.com").await.expect("request");
    assert_ne!(r.body.trim(), "v1");
}

/// (b) Requests split by the VirtualService weights (80/20) within tolerance.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_split_by_weight() {
    let mesh = start().await;
    let counts = mesh.split("reviews", 400).await.expect("requests");
    assert_eq!(
        counts.keys().cloned().collect::<Vec<_>>(),
        vec!["v1", "v2"],
        "{counts:?}"
    );
    // Envoy picks a weighted cluster at random per request: with 400
    // requests the v1 share has a standard deviation of 2 points, so ±8
    // points is a 4-sigma band.
    let v1 = share(&counts, "v1");
    assert!(
        (0.72..=0.88).contains(&v1),
        "v1 share {v1:.2} outside 0.80 ± 0.08: {counts:?}"
    );
}

/// (c) Editing the folder changes routing before a deadline.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn editing_the_folder_changes_routing() {
    let mut mesh = start().await;
    let file = mesh.config_dir().join("reviews-routing.yaml");
    let text = std::fs::read_to_string(&file).expect("read");
    let all_v2 = text
        .replace("weight: 80", "weight: 0")
        .replace("weight: 20", "weight: 100");
    assert_ne!(
        text, all_v2,
        "the example rule has the weights this test edits"
    );
    std::fs::write(&file, all_v2).expect("write");
    mesh.wait_routing("reviews", |b| b == "v2", DEADLINE)
        .await
        .expect("rule change reaches Envoy");
    let counts = mesh.split("reviews", 50).await.expect("requests");
    assert_eq!(counts.get("v2"), Some(&50), "{counts:?}");

    // Removing the rule falls back to the default route, balanced over both
    // versions: v1 gets traffic again.
    std::fs::remove_file(&file).expect("rm");
    let mesh = &mesh;
    wait::until("v1 to receive traffic again", DEADLINE, || async move {
        let counts = mesh.split("reviews", 20).await.map_err(|e| e.to_string())?;
        Ok(counts.contains_key("v1").then_some(()))
    })
    .await
    .expect("default route after the rule is removed");
}

/// A folder mounted from a Kubernetes ConfigMap changes by swapping the
/// `..data` link its files resolve through; no event names the files, and
/// the swap still changes routing.
#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_configmap_style_link_swap_changes_routing() {
    use std::os::unix::fs::symlink;
    let mut mesh = start().await;
    let dir = mesh.config_dir().to_path_buf();
    let name = "reviews-routing.yaml";
    let text = std::fs::read_to_string(dir.join(name)).expect("read");
    let only = |v1: u32| {
        text.replace("weight: 80", &format!("weight: {v1}"))
            .replace("weight: 20", &format!("weight: {}", 100 - v1))
    };
    // The kubelet's layout: a versioned directory, `..data` linking to it,
    // and each file a link through `..data`. Here it sends all to v2.
    for (version, v1) in [("..v1", 0), ("..v2", 100)] {
        std::fs::create_dir(dir.join(version)).expect("mkdir");
        std::fs::write(dir.join(version).join(name), only(v1)).expect("write");
    }
    symlink("..v1", dir.join("..data")).expect("symlink");
    symlink(format!("..data/{name}"), dir.join(".link.tmp")).expect("symlink");
    std::fs::rename(dir.join(".link.tmp"), dir.join(name)).expect("rename");
    mesh.wait_routing("reviews", |b| b == "v2", DEADLINE)
        .await
        .expect("the linked file is read");

    // The update: only the links change.
    symlink("..v2", dir.join("..data_tmp")).expect("symlink");
    std::fs::rename(dir.join("..data_tmp"), dir.join("..data")).expect("rename");
    mesh.wait_routing("reviews", |b| b == "v1", DEADLINE)
        .await
        .expect("the swap reaches Envoy");
}

fn route_config(dump: &Value, name: &str) -> (String, Value) {
    let rc = dump_section(dump, "RoutesConfigDump", "dynamic_route_configs")
        .into_iter()
        .find(|r| r["route_config"]["name"] == name)
        .unwrap_or_else(|| panic!("route config {name} not in config_dump"));
    (
        rc["version_info"].as_str().unwrap_or_default().to_string(),
        rc["route_config"].clone(),
    )
}

/// (d) An invalid file dropped into the folder is reported with an error
/// naming the file (and resource and field), and routing stays exactly as it was.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_files_are_reported_and_change_nothing() {
    let mut mesh = start().await;
    let route_name = mesh.ports.service.to_string();
    let before = route_config(&mesh.config_dump().await.expect("dump"), &route_name);

    let dir = mesh.config_dir().to_path_buf();
    // A new resource with a bad regex, a file that is not YAML at all, and a
    // bad edit of the live rule (weights adding up to 110).
    std::fs::write(
        dir.join("broken-rule.yaml"),
        "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: ratings-canary}\nspec:\n  hosts: [ratings]\n  http:\n  - match: [{uri: {regex: \"/(unclosed\"}}]\n    route: [{destination: {host: ratings}}]\n",
    )
    .expect("write");
    std::fs::write(
        dir.join("garbage.yaml"),
        "kind: [this is: not yaml\n\t- ]]\n",
    )
    .expect("write");
    let live = dir.join("reviews-routing.yaml");
    let text = std::fs::read_to_string(&live).expect("read");
    std::fs::write(&live, text.replace("weight: 20", "weight: 30")).expect("write");

    let discovery = &mut mesh.discovery;
    let log = wait::until("discovery to report the three bad files", DEADLINE, || {
        let log = discovery.log();
        async move {
            let all = [
                "broken-rule.yaml",
                "garbage.yaml",
                "reviews-routing.yaml: document 2",
            ]
            .iter()
            .all(|f| log.contains(f));
            Ok(all.then_some(log))
        }
    })
    .await
    .expect("errors reported");
    assert!(
        log.contains("broken-rule.yaml: document 1: VirtualService default/ratings-canary: spec.http[0].match[0].uri: invalid regex"),
        "{log}"
    );
    assert!(log.contains("garbage.yaml: not valid YAML"), "{log}");
    assert!(
        log.contains("reviews-routing.yaml: document 2: VirtualService default/reviews: spec.http[0].route: destination weights must add up to 100, they add up to 110"),
        "{log}"
    );

    // Nothing was pushed: the route configuration, version included, is
    // exactly what it was, and traffic still splits 80/20.
    let after = route_config(&mesh.config_dump().await.expect("dump"), &route_name);
    assert_eq!(before, after);
    let counts = mesh.split("reviews", 200).await.expect("requests");
    let v1 = share(&counts, "v1");
    assert!((0.70..=0.90).contains(&v1), "v1 share {v1:.2}: {counts:?}");
    mesh.discovery
        .check_running()
        .expect("discovery still running");
}

/// SIGTERM to the agent stops Envoy, and the agent exits with Envoy's status.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_forwards_sigterm_and_exits_with_envoy() {
    let mut mesh = start().await;
    // Only the agent is signalled: Envoy stops because the agent forwards it.
    let status = mesh.agent.terminate().expect("agent exited after SIGTERM");
    assert_eq!(status.code(), Some(0), "agent log:\n{}", mesh.agent.log());
    assert!(
        mesh.request("reviews").await.is_err(),
        "nothing listens once Envoy is gone"
    );
}
