//! The Kubernetes registry against a real API server (kube-apiserver v1.20.2
//! on etcd, `make kube-tools`): objects created through the kube client,
//! pilot-discovery watching them, and a real Envoy routing real requests.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use integration_tests::binaries::envoy;
use integration_tests::discovery::{configz_keys, Discovery};
use integration_tests::kube_api::{create_yaml, manifests_dir, KubeApi, PILOT_SA_TOKEN, POD_IP};
use integration_tests::mesh::Xds;
use integration_tests::ports::free_port;
use integration_tests::process::Proc;
use integration_tests::sidecar::{agent_command, SidecarPorts};
use integration_tests::upstream::Upstream;
use integration_tests::wait;
use k8s_openapi::api::core::v1::{Endpoints, Pod, Service};
use kube::api::{Api, DeleteParams, DynamicObject, Patch, PatchParams};
use kube::core::{ApiResource, GroupVersionKind};
use pilot_agent::http_client;
use serde_json::{json, Value};

const CONVERGE: Duration = Duration::from_secs(30);
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

fn host(name: &str, ns: &str) -> String {
    format!("{name}.{ns}.svc.cluster.local")
}

/// A Service with one HTTP port.
fn service(name: &str, ns: &str, port: u16) -> String {
    format!(
        "apiVersion: v1\nkind: Service\nmetadata: {{name: {name}, namespace: {ns}}}\n\
         spec:\n  ports: [{{name: http, port: {port}}}]\n---\n"
    )
}

/// Endpoints with one subset per (pod, port): each upstream is its own pod.
fn endpoints(name: &str, ns: &str, pods: &[(&str, u16)]) -> Value {
    let subsets: Vec<Value> = pods
        .iter()
        .map(|(pod, port)| {
            json!({
                "addresses": [{"ip": POD_IP, "targetRef": {"kind": "Pod", "name": pod, "namespace": ns}}],
                "ports": [{"name": "http", "port": port}]
            })
        })
        .collect();
    json!({
        "apiVersion": "v1", "kind": "Endpoints",
        "metadata": {"name": name, "namespace": ns},
        "subsets": subsets
    })
}

fn pod(name: &str, ns: &str, version: &str, node: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\n  namespace: {ns}\n  labels: {{app: reviews, version: {version}}}\n\
         spec:\n  nodeName: {node}\n  serviceAccountName: reviews\n  containers: [{{name: app, image: reviews}}]\n---\n"
    )
}

fn vs_api() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("networking.istio.io", "v1", "VirtualService"),
        "virtualservices",
    )
}

fn route_to(subset: &str) -> Value {
    json!({"hosts": ["reviews"], "http": [{"route": [{"destination": {"host": "reviews", "subset": subset}}]}]})
}

/// The sidecar: pilot-agent and Envoy in local mode, as pod `sleep` in `ns`.
fn start_sidecar(grpc: u16, dir: &Path, ns: &str) -> anyhow::Result<Proc> {
    let cmd = agent_command(
        grpc,
        Xds::Delta,
        &envoy()?,
        &dir.join("proxy"),
        SidecarPorts::free()?,
        "sleep",
        ns,
    )?;
    Proc::spawn("pilot-agent", cmd, &dir.join("agent.log"))
}

/// The bodies `n` requests to `host` on `port` through the sidecar get.
async fn bodies(port: u16, host: &str, n: usize) -> Result<BTreeSet<String>, String> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut seen = BTreeSet::new();
    for _ in 0..n {
        let r = http_client::get(addr, host, "/", REQUEST_TIMEOUT)
            .await
            .map_err(|e| e.to_string())?;
        if r.status != 200 {
            return Err(format!("HTTP {}: {}", r.status, r.body.trim()));
        }
        seen.insert(r.body.trim().to_string());
    }
    Ok(seen)
}

/// Waits until 20 requests through the sidecar get exactly `expected` bodies.
async fn wait_bodies(port: u16, host: &str, expected: &[&str]) -> anyhow::Result<()> {
    let expected: BTreeSet<String> = expected.iter().map(|s| s.to_string()).collect();
    wait::until(
        &format!("{host} to answer with {expected:?}"),
        CONVERGE,
        || {
            let expected = expected.clone();
            async move {
                let seen = bodies(port, host, 20).await?;
                if seen == expected {
                    Ok(Some(()))
                } else {
                    Err(format!("got {seen:?}"))
                }
            }
        },
    )
    .await
}

async fn pushes(d: &Discovery, kind: &str) -> f64 {
    d.metric(&format!("pilot_xds_pushes{{type=\"{kind}\"}}"))
        .await
        .unwrap_or(0.0)
}

async fn config_errors(d: &Discovery) -> anyhow::Result<Vec<String>> {
    let configz = d.json("/debug/configz").await?;
    Ok(configz["errors"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| e["error"].as_str().unwrap_or_default().to_string())
        .collect())
}

/// Services, Endpoints, Pods, Nodes and Istio custom resources created in a
/// real API server become routes a real Envoy serves; each kind of change
/// reaches Envoy with the push it needs: an endpoint or pod label change as
/// EDS alone, a custom resource or Service change as a config push; a
/// malformed custom resource is rejected alone and its last good version
/// keeps serving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubernetes_objects_route_real_traffic_and_changes_push_what_they_need() {
    let api = KubeApi::start().await.expect("API server");
    let client = api.client().await.expect("client");
    let crds = std::fs::read_to_string(manifests_dir().join("crds.yaml")).expect("crds.yaml");
    create_yaml(&client, &crds).await.expect("CRDs");

    let ns = "shop";
    let v1 = Upstream::start_free(POD_IP, "v1").await.expect("v1");
    let v2 = Upstream::start_free(POD_IP, "v2").await.expect("v2");
    let v2b = Upstream::start_free(POD_IP, "v2b").await.expect("v2b");
    let ratings = Upstream::start_free(POD_IP, "ratings")
        .await
        .expect("ratings");
    let svc_port = free_port().expect("port");
    let objects = format!(
        "apiVersion: v1\nkind: Namespace\nmetadata: {{name: {ns}}}\n---\n\
         apiVersion: v1\nkind: Node\nmetadata:\n  name: node-a\n  labels: {{topology.kubernetes.io/region: eu-west, topology.kubernetes.io/zone: eu-west-1a}}\n---\n\
         {}{}{}\
         apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {{name: reviews, namespace: {ns}}}\n\
         spec:\n  host: reviews\n  subsets:\n  - {{name: v1, labels: {{version: v1}}}}\n  - {{name: v2, labels: {{version: v2}}}}\n---\n\
         apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {{name: reviews, namespace: {ns}}}\n\
         spec: {}\n",
        pod("reviews-v1", ns, "v1", "node-a"),
        pod("reviews-v2", ns, "v2", "node-a"),
        service("reviews", ns, svc_port),
        route_to("v2"),
    );
    create_yaml(&client, &objects).await.expect("objects");
    let eps_api: Api<Endpoints> = Api::namespaced(client.clone(), ns);
    let eps: Endpoints = serde_json::from_value(endpoints(
        "reviews",
        ns,
        &[
            ("reviews-v1", v1.addr.port()),
            ("reviews-v2", v2.addr.port()),
        ],
    ))
    .expect("endpoints");
    eps_api
        .create(&Default::default(), &eps)
        .await
        .expect("create endpoints");

    let work = tempfile::tempdir().expect("tempdir");
    let folder = work.path().join("config");
    std::fs::create_dir(&folder).expect("config folder");
    let kubeconfig = api.kubeconfig.to_str().expect("utf-8 path").to_string();
    let discovery = Discovery::start(
        &folder,
        &work.path().join("discovery.log"),
        &[
            "--registries",
            "ConfigFolder,Kubernetes",
            "--kubeconfig",
            &kubeconfig,
        ],
    )
    .await
    .expect("discovery");
    let mut sidecar = start_sidecar(discovery.grpc, work.path(), ns).expect("sidecar");
    let reviews = host("reviews", ns);

    // The VirtualService picks subset v2, which the DestinationRule defines
    // by a label only the Pod carries: the Endpoints name the pods.
    wait_bodies(svc_port, &reviews, &["v2"])
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", sidecar.log()));
    let registry = discovery.json("/debug/endpointz").await.expect("endpointz");
    let text = registry.to_string();
    assert!(
        text.contains("eu-west-1a") && text.contains("reviews"),
        "endpoints carry the node's locality and the pod's service account: {text}"
    );

    // An endpoint change: EDS only.
    let (cds, lds) = (
        pushes(&discovery, "cds").await,
        pushes(&discovery, "lds").await,
    );
    let eds = pushes(&discovery, "eds").await;
    let moved = endpoints(
        "reviews",
        ns,
        &[
            ("reviews-v1", v1.addr.port()),
            ("reviews-v2", v2b.addr.port()),
        ],
    );
    eps_api
        .patch("reviews", &PatchParams::default(), &Patch::Merge(&moved))
        .await
        .expect("patch endpoints");
    wait_bodies(svc_port, &reviews, &["v2b"])
        .await
        .expect("endpoint change");
    assert!(pushes(&discovery, "eds").await > eds, "EDS was pushed");
    assert_eq!(
        pushes(&discovery, "cds").await,
        cds,
        "no CDS push for endpoints"
    );
    assert_eq!(
        pushes(&discovery, "lds").await,
        lds,
        "no LDS push for endpoints"
    );

    // A custom resource change: a config push.
    let vs_api: Api<DynamicObject> = Api::namespaced_with(client.clone(), ns, &vs_api());
    vs_api
        .patch(
            "reviews",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": route_to("v1")})),
        )
        .await
        .expect("patch VirtualService");
    wait_bodies(svc_port, &reviews, &["v1"])
        .await
        .expect("route change");

    // A pod label change moves its endpoint into another subset: EDS only.
    let cds = pushes(&discovery, "cds").await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    pods.patch(
        "reviews-v2",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"labels": {"version": "v1"}}})),
    )
    .await
    .expect("relabel pod");
    wait_bodies(svc_port, &reviews, &["v1", "v2b"])
        .await
        .expect("pod label change");
    assert_eq!(
        pushes(&discovery, "cds").await,
        cds,
        "no CDS push for a pod label"
    );

    // A malformed edit of the VirtualService is rejected alone: the last
    // good version keeps routing, and the error names resource and field.
    vs_api
        .patch(
            "reviews",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"http": [{"route": [{"destination": {"host": "reviews", "subset": "v2"}, "weight": "half"}]}]}})),
        )
        .await
        .expect("patch VirtualService");
    let error = wait::until("the bad VirtualService to be reported", CONVERGE, || {
        let d = &discovery;
        async move {
            let errors = config_errors(d).await.map_err(|e| e.to_string())?;
            Ok(errors
                .into_iter()
                .find(|e| e.contains("VirtualService shop/reviews")))
        }
    })
    .await
    .expect("error reported");
    assert!(
        error.contains("kubernetes://Kubernetes") && error.contains("spec.http[0].route[0].weight"),
        "{error}"
    );
    assert_eq!(
        bodies(svc_port, &reviews, 20).await.expect("requests"),
        BTreeSet::from(["v1".to_string(), "v2b".to_string()]),
        "the last good VirtualService still routes"
    );

    // A new Service (and its endpoints) reaches the proxy, while the bad
    // VirtualService is still rejected.
    let ratings_port = free_port().expect("port");
    create_yaml(&client, &service("ratings", ns, ratings_port))
        .await
        .expect("ratings service");
    let ratings_eps: Endpoints = serde_json::from_value(endpoints(
        "ratings",
        ns,
        &[("ratings-1", ratings.addr.port())],
    ))
    .expect("endpoints");
    eps_api
        .create(&Default::default(), &ratings_eps)
        .await
        .expect("ratings endpoints");
    wait_bodies(ratings_port, &host("ratings", ns), &["ratings"])
        .await
        .expect("new service");

    // Fixing the VirtualService applies it: reviews now goes to ratings.
    let to_ratings =
        json!({"hosts": ["reviews"], "http": [{"route": [{"destination": {"host": "ratings"}}]}]});
    vs_api
        .patch(
            "reviews",
            &PatchParams::default(),
            &Patch::Merge(json!({ "spec": to_ratings })),
        )
        .await
        .expect("fix VirtualService");
    wait_bodies(svc_port, &reviews, &["ratings"])
        .await
        .expect("fixed route");
    assert!(config_errors(&discovery).await.expect("configz").is_empty());

    // Deleting the Service removes its routes.
    let services: Api<Service> = Api::namespaced(client.clone(), ns);
    services
        .delete("ratings", &DeleteParams::default())
        .await
        .expect("delete service");
    wait::until("ratings to be gone", CONVERGE, || async {
        Ok(bodies(ratings_port, &host("ratings", ns), 1)
            .await
            .is_err()
            .then_some(()))
    })
    .await
    .expect("deleted service");
    sidecar.check_running().expect("sidecar still running");
}

/// The API server stops; while it is down the proxy keeps its config and
/// discovery stays ready. Changes made meanwhile through another API server
/// on the same etcd (an update, an addition, a deletion), with etcd's history
/// compacted so the old watch position is gone (410), are all there once the
/// first API server is back: nothing lost, nothing left behind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watches_converge_after_the_api_server_restarts() {
    let mut api = KubeApi::start().await.expect("API server");
    let client = api.client().await.expect("client");
    let ns = "default";
    let one = Upstream::start_free(POD_IP, "one").await.expect("one");
    let two = Upstream::start_free(POD_IP, "two").await.expect("two");
    let (reviews_port, gone_port, extra_port) = (
        free_port().expect("port"),
        free_port().expect("port"),
        free_port().expect("port"),
    );
    let objects = format!(
        "{}{}",
        service("reviews", ns, reviews_port),
        service("gone", ns, gone_port)
    );
    create_yaml(&client, &objects).await.expect("objects");
    let eps_api: Api<Endpoints> = Api::namespaced(client.clone(), ns);
    for (name, port) in [("reviews", one.addr.port()), ("gone", one.addr.port())] {
        let e: Endpoints =
            serde_json::from_value(endpoints(name, ns, &[("p", port)])).expect("endpoints");
        eps_api
            .create(&Default::default(), &e)
            .await
            .expect("endpoints");
    }

    let work = tempfile::tempdir().expect("tempdir");
    let kubeconfig = api.kubeconfig.to_str().expect("utf-8 path").to_string();
    let discovery_log = work.path().join("discovery.log");
    let mut discovery = Discovery::spawn(
        free_port().expect("port"),
        &discovery_log,
        &["--registries", "Kubernetes", "--kubeconfig", &kubeconfig],
    )
    .expect("discovery");
    discovery.wait_ready().await.expect("ready");
    let _sidecar = start_sidecar(discovery.grpc, work.path(), ns).expect("sidecar");
    wait_bodies(reviews_port, &host("reviews", ns), &["one"])
        .await
        .expect("first route");
    wait_bodies(gone_port, &host("gone", ns), &["one"])
        .await
        .expect("second route");

    api.stop_apiserver();
    wait::until("discovery to see the watch fail", CONVERGE, || {
        let log = std::fs::read_to_string(&discovery_log).unwrap_or_default();
        async move { Ok(log.contains("Kubernetes watch failed").then_some(())) }
    })
    .await
    .expect("watch failure logged");
    assert_eq!(
        bodies(reviews_port, &host("reviews", ns), 5).await,
        Ok(BTreeSet::from(["one".to_string()])),
        "Envoy keeps its config while the API server is down"
    );
    let ready = discovery.get("/ready").await.expect("ready");
    assert_eq!(ready.status, 200, "discovery keeps serving its last view");

    // Changes through a second API server on the same etcd.
    let other_port = free_port().expect("port");
    let mut other = api
        .start_apiserver(other_port)
        .await
        .expect("second API server");
    let other_client = api.client_on(other_port).await.expect("client");
    let other_eps: Api<Endpoints> = Api::namespaced(other_client.clone(), ns);
    let moved = endpoints("reviews", ns, &[("p", two.addr.port())]);
    other_eps
        .patch("reviews", &PatchParams::default(), &Patch::Merge(&moved))
        .await
        .expect("update");
    Api::<Service>::namespaced(other_client.clone(), ns)
        .delete("gone", &DeleteParams::default())
        .await
        .expect("delete");
    create_yaml(&other_client, &service("extra", ns, extra_port))
        .await
        .expect("add");
    let e: Endpoints = serde_json::from_value(endpoints("extra", ns, &[("p", two.addr.port())]))
        .expect("endpoints");
    other_eps
        .create(&Default::default(), &e)
        .await
        .expect("add endpoints");
    api.compact_etcd().expect("compact");
    other.stop();

    api.restart_apiserver().await.expect("restart");
    wait_bodies(reviews_port, &host("reviews", ns), &["two"])
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", api.logs()));
    wait_bodies(extra_port, &host("extra", ns), &["two"])
        .await
        .expect("added service");
    wait::until("the deleted service to be gone", CONVERGE, || async {
        Ok(bodies(gone_port, &host("gone", ns), 1)
            .await
            .is_err()
            .then_some(()))
    })
    .await
    .expect("deleted service");
    let configz = discovery.json("/debug/configz").await.expect("configz");
    let services: Vec<String> = configz_keys(&configz)
        .into_iter()
        .filter(|k| k.starts_with("Service "))
        .collect();
    assert_eq!(
        services,
        vec![
            "Service default/extra",
            "Service default/kubernetes",
            "Service default/reviews"
        ],
        "{configz}"
    );
    let endpointz = discovery.json("/debug/endpointz").await.expect("endpointz");
    let reviews_eps = endpointz["endpoints"][host("reviews", ns)]
        .as_array()
        .map(Vec::len);
    assert_eq!(reviews_eps, Some(1), "no endpoint left behind: {endpointz}");
}

/// The manifests are accepted by a real API server, and pilot-discovery
/// running as their ServiceAccount, with their ClusterRole, syncs every
/// watch. Before the role is bound its watches are refused and `/ready`
/// stays 503.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn manifests_apply_and_their_role_is_all_discovery_needs() {
    let api = KubeApi::start().await.expect("API server");
    let client = api.client().await.expect("client");
    let read = |name: &str| {
        std::fs::read_to_string(manifests_dir().join(name))
            .unwrap_or_else(|e| panic!("manifests/{name}: {e}"))
    };
    create_yaml(&client, &read("crds.yaml"))
        .await
        .expect("CRDs");
    create_yaml(&client, &service("reviews", "default", 9080))
        .await
        .expect("service");

    // The 1.20 server serves no discovery.k8s.io/v1: Endpoints are watched.
    let served = pilot_discovery::kubernetes::discovery::discover(
        &client,
        pilot_discovery::kubernetes::EndpointApiChoice::Auto,
    )
    .await
    .expect("discovery");
    assert_eq!(
        served.endpoint_api,
        pilot_discovery::kubernetes::EndpointApi::Endpoints
    );
    assert_eq!(
        served.istio.len(),
        pilot_discovery::kubernetes::discovery::custom_kinds().count(),
        "every kind the model reads has its CRD in the manifests: {:?}",
        served.istio
    );

    let work = tempfile::tempdir().expect("tempdir");
    let kubeconfig = api
        .kubeconfig_with_token("pilot", PILOT_SA_TOKEN)
        .expect("kubeconfig");
    let log = work.path().join("discovery.log");
    let mut discovery = Discovery::spawn(
        free_port().expect("port"),
        &log,
        &[
            "--registries",
            "Kubernetes",
            "--kubeconfig",
            kubeconfig.to_str().expect("utf-8 path"),
        ],
    )
    .expect("discovery");
    wait::until("a refused watch", CONVERGE, || {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        async move { Ok(text.contains("Kubernetes watch failed").then_some(())) }
    })
    .await
    .expect("watch refused before the role is bound");
    let ready = discovery.get("/ready").await.expect("ready");
    assert_eq!(ready.status, 503, "not ready before every watch has synced");
    // It says what it waits for: the cluster's watches, so no first snapshot.
    assert_eq!(
        ready.body,
        "not ready: waiting for first snapshot\nnot ready: waiting for kubernetes://Kubernetes\n"
    );

    create_yaml(&client, &read("rbac.yaml"))
        .await
        .expect("rbac");
    discovery.wait_ready().await.expect("ready with the role");
    let configz = discovery.json("/debug/configz").await.expect("configz");
    assert!(configz.to_string().contains("\"reviews\""), "{configz}");

    create_yaml(&client, &read("discovery.yaml"))
        .await
        .expect("discovery manifests");
    create_yaml(&client, &read("sidecar-example.yaml"))
        .await
        .expect("sidecar example");
}

/// Istio's CRDs installed after pilot-discovery started are noticed (with
/// only the manifests' role) and their resources read, with no restart; a
/// bad one among them is rejected alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn istio_crds_installed_later_are_read_without_a_restart() {
    let api = KubeApi::start().await.expect("API server");
    let client = api.client().await.expect("client");
    let rbac = std::fs::read_to_string(manifests_dir().join("rbac.yaml")).expect("rbac.yaml");
    create_yaml(&client, &rbac).await.expect("rbac");
    let work = tempfile::tempdir().expect("tempdir");
    let kubeconfig = api
        .kubeconfig_with_token("pilot", PILOT_SA_TOKEN)
        .expect("kubeconfig");
    let mut discovery = Discovery::spawn(
        free_port().expect("port"),
        &work.path().join("discovery.log"),
        &[
            "--registries",
            "Kubernetes",
            "--kubeconfig",
            kubeconfig.to_str().expect("utf-8 path"),
        ],
    )
    .expect("discovery");
    discovery
        .wait_ready()
        .await
        .expect("ready without the CRDs");

    let crds = std::fs::read_to_string(manifests_dir().join("crds.yaml")).expect("crds.yaml");
    create_yaml(&client, &crds).await.expect("CRDs");
    let resources = format!(
        "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {{name: good, namespace: default}}\nspec: {}\n---\n\
         apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {{name: bad, namespace: default}}\nspec: {{host: reviews, subsets: [{{name: v1}}], trafficPolicy: 7}}\n",
        route_to("v1")
    );
    create_yaml(&client, &resources)
        .await
        .expect("custom resources");
    let (kinds, errors) = wait::until("the custom resources to be read", CONVERGE, || {
        let d = &discovery;
        async move {
            let configz = d.json("/debug/configz").await.map_err(|e| e.to_string())?;
            let kinds: Vec<String> = configz_keys(&configz)
                .into_iter()
                .filter(|k| !k.starts_with("Service ") && !k.starts_with("Namespace "))
                .collect();
            let errors = config_errors(d).await.map_err(|e| e.to_string())?;
            Ok((!kinds.is_empty() && !errors.is_empty()).then_some((kinds, errors)))
        }
    })
    .await
    .expect("custom resources read");
    assert_eq!(kinds, vec!["VirtualService default/good".to_string()]);
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0].contains("DestinationRule default/bad")
            && errors[0].contains("spec.trafficPolicy"),
        "{errors:?}"
    );
}

/// Flags that cannot work (registries, selectors, TLS and debug access
/// files) fail at start, naming what is wrong.
#[test]
fn bad_flags_fail_at_start_with_a_clear_error() {
    let binary = integration_tests::binaries::workspace_binary("pilot-discovery").expect("binary");
    let work = tempfile::tempdir().expect("tempdir");
    let missing = work.path().join("missing.kubeconfig");
    let not_pem = work.path().join("not-pem.txt");
    std::fs::write(&not_pem, "hello").expect("write");
    let not_pem = not_pem.display().to_string();
    let cases: [(Vec<String>, &str); 7] = [
        (
            vec![
                "--registries".into(),
                "Kubernetes".into(),
                "--kubeconfig".into(),
                missing.display().to_string(),
            ],
            "cannot read kubeconfig",
        ),
        (
            vec!["--registries".into(), "Consul".into()],
            "\"Consul\" is not a registry",
        ),
        (
            vec!["--registries".into(), "ConfigFolder".into()],
            "--registries includes ConfigFolder but no --config-dir is set",
        ),
        (
            vec!["--discovery-selectors".into(), "team in (a,b".into()],
            "invalid label selector \"team in (a,b\": unclosed '('",
        ),
        (
            vec!["--debug-auth".into(), missing.display().to_string()],
            "cannot read --debug-auth token file",
        ),
        (
            vec![
                "--tls-cert-file".into(),
                not_pem.clone(),
                "--tls-key-file".into(),
                not_pem.clone(),
            ],
            "holds no PEM CERTIFICATE",
        ),
        (vec!["--tls-cert-file".into(), not_pem], "--tls-key-file"),
    ];
    for (args, expected) in cases {
        let out = std::process::Command::new(&binary)
            .arg("discovery")
            .args(["--grpc-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0"])
            .args(["--monitoring-addr", "127.0.0.1:0"])
            .args(&args)
            .output()
            .expect("run pilot-discovery");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} should fail");
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
    }
}

/// Run as in a pod (no kubeconfig; `KUBERNETES_SERVICE_HOST`/`_PORT` and
/// the service account files at /var/run/secrets/kubernetes.io/
/// serviceaccount, placed in a private mount namespace so the machine's own
/// /run is untouched), pilot-discovery uses the in-cluster config.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_cluster_config_is_used_when_run_in_a_pod() {
    let api = KubeApi::start().await.expect("API server");
    let client = api.client().await.expect("client");
    let rbac = std::fs::read_to_string(manifests_dir().join("rbac.yaml")).expect("rbac.yaml");
    create_yaml(&client, &rbac).await.expect("rbac");
    create_yaml(&client, &service("reviews", "default", 9080))
        .await
        .expect("service");

    let work = tempfile::tempdir().expect("tempdir");
    let sa = work.path().join("serviceaccount");
    std::fs::create_dir(&sa).expect("dir");
    std::fs::write(sa.join("token"), PILOT_SA_TOKEN).expect("token");
    std::fs::write(sa.join("namespace"), "istio-system").expect("namespace");
    std::fs::copy(api.ca_file(), sa.join("ca.crt")).expect("ca.crt");
    let binary = integration_tests::binaries::workspace_binary("pilot-discovery").expect("binary");
    let (grpc, http, monitoring) = (
        free_port().expect("port"),
        free_port().expect("port"),
        free_port().expect("port"),
    );
    let script = "mount -t tmpfs pod-run /run && \
                  mkdir -p /run/secrets/kubernetes.io && \
                  cp -r \"$SA_DIR\" /run/secrets/kubernetes.io/serviceaccount && \
                  exec \"$@\"";
    let mut cmd = std::process::Command::new("unshare");
    cmd.args([
        "--mount",
        "--propagation",
        "private",
        "sh",
        "-c",
        script,
        "sh",
    ])
    .arg(&binary)
    .args(["discovery", "--registries", "Kubernetes"])
    .args(["--grpc-addr", &format!("127.0.0.1:{grpc}")])
    .args(["--http-addr", &format!("127.0.0.1:{http}")])
    .args(["--monitoring-addr", &format!("127.0.0.1:{monitoring}")])
    .env("SA_DIR", &sa)
    .env("KUBERNETES_SERVICE_HOST", "127.0.0.1")
    .env("KUBERNETES_SERVICE_PORT", api.port.to_string())
    .env("HOME", work.path())
    .env_remove("KUBECONFIG");
    let proc = Proc::spawn("pilot-discovery", cmd, &work.path().join("discovery.log"))
        .expect("pilot-discovery in a mount namespace");
    let mut discovery = Discovery {
        proc,
        grpc,
        http,
        monitoring,
    };
    discovery
        .wait_ready()
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", discovery.proc.log()));
    let configz = discovery.json("/debug/configz").await.expect("configz");
    assert!(configz.to_string().contains("\"reviews\""), "{configz}");
}

/// pilot-discovery reading only the Kubernetes registry, as a Deployment in
/// a cluster does, with `extra` flags; ready once every watch has synced.
async fn kube_only_discovery(api: &KubeApi, work: &Path, extra: &[&str]) -> Discovery {
    let kubeconfig = api.kubeconfig.to_str().expect("utf-8 path").to_string();
    let mut args = vec!["--registries", "Kubernetes", "--kubeconfig", &kubeconfig];
    args.extend_from_slice(extra);
    let mut discovery = Discovery::spawn(
        free_port().expect("port"),
        &work.join("discovery.log"),
        &args,
    )
    .expect("discovery");
    discovery
        .wait_ready()
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", discovery.proc.log()));
    discovery
}

/// A Service in `ns` on `port` whose one endpoint is `upstream`.
async fn service_with_endpoint(
    client: &kube::Client,
    name: &str,
    ns: &str,
    port: u16,
    upstream: &Upstream,
) {
    create_yaml(client, &service(name, ns, port))
        .await
        .unwrap_or_else(|e| panic!("service {ns}/{name}: {e}"));
    let eps: Endpoints = serde_json::from_value(endpoints(
        name,
        ns,
        &[(&format!("{name}-1"), upstream.addr.port())],
    ))
    .expect("endpoints");
    Api::<Endpoints>::namespaced(client.clone(), ns)
        .create(&Default::default(), &eps)
        .await
        .unwrap_or_else(|e| panic!("endpoints {ns}/{name}: {e}"));
}

/// Waits until requests for `host` on `port` find no listener.
async fn wait_unreachable(port: u16, host: &str) -> anyhow::Result<()> {
    wait::until(
        &format!("{host} to become unreachable"),
        CONVERGE,
        || async { Ok(bodies(port, host, 1).await.is_err().then_some(())) },
    )
    .await
}

/// A proxy takes its labels from its pod, as in Istio: relabelling the pod
/// brings it under a Sidecar resource (created through the API server) that
/// selects the new label, with a push to that proxy alone, and taking the
/// label off frees it again. Nothing else changed meanwhile, so no other
/// kind of push could have done it. While the Sidecar hides Service `b`, a
/// change to `b` sends the proxy nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pods_label_change_rescopes_its_own_proxy() {
    let api = KubeApi::start().await.expect("API server");
    let client = api.client().await.expect("client");
    let crds = std::fs::read_to_string(manifests_dir().join("crds.yaml")).expect("crds.yaml");
    create_yaml(&client, &crds).await.expect("CRDs");
    let ns = "shop";
    let a = Upstream::start_free(POD_IP, "a").await.expect("a");
    let b = Upstream::start_free(POD_IP, "b").await.expect("b");
    let (port_a, port_b) = (free_port().expect("port"), free_port().expect("port"));
    let objects = format!(
        "apiVersion: v1\nkind: Namespace\nmetadata: {{name: {ns}}}\n---\n\
         apiVersion: v1\nkind: Pod\nmetadata:\n  name: sleep\n  namespace: {ns}\n  labels: {{app: sleep}}\n\
         spec:\n  containers: [{{name: app, image: sleep}}]\n---\n\
         apiVersion: networking.istio.io/v1\nkind: Sidecar\nmetadata: {{name: narrow, namespace: {ns}}}\n\
         spec:\n  workloadSelector: {{labels: {{scope: narrow}}}}\n  egress: [{{hosts: [\"./{}\"]}}]\n",
        host("a", ns)
    );
    create_yaml(&client, &objects).await.expect("objects");
    service_with_endpoint(&client, "a", ns, port_a, &a).await;
    service_with_endpoint(&client, "b", ns, port_b, &b).await;

    let work = tempfile::tempdir().expect("tempdir");
    let discovery = kube_only_discovery(&api, work.path(), &[]).await;
    let mut sidecar = start_sidecar(discovery.grpc, work.path(), ns).expect("sidecar");
    let (host_a, host_b) = (host("a", ns), host("b", ns));
    wait_bodies(port_a, &host_a, &["a"])
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", sidecar.log()));
    wait_bodies(port_b, &host_b, &["b"])
        .await
        .expect("b visible: the Sidecar selects no pod yet");

    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    let label = |value: Value| {
        let pods = pods.clone();
        async move {
            pods.patch(
                "sleep",
                &PatchParams::default(),
                &Patch::Merge(json!({"metadata": {"labels": {"scope": value}}})),
            )
            .await
            .expect("relabel pod")
        }
    };
    let cds = pushes(&discovery, "cds").await;
    label(json!("narrow")).await;
    wait_unreachable(port_b, &host_b)
        .await
        .expect("b hidden once the Sidecar selects the pod");
    assert_eq!(
        bodies(port_a, &host_a, 20).await.expect("a still routes"),
        BTreeSet::from(["a".to_string()])
    );
    assert!(
        pushes(&discovery, "cds").await > cds,
        "the proxy got new clusters"
    );
    let status = discovery
        .json("/debug/push_status")
        .await
        .expect("push status");
    let last = &status["status"]["last"];
    assert_eq!(last["full"], json!(false), "not a full push: {status}");
    assert_eq!(
        last["relabelledPods"],
        json!([format!("sleep.{ns}")]),
        "{status}"
    );

    // A change to a Service the proxy no longer sees sends it nothing. The
    // barrier: a later change to one it sees, once applied, proves the
    // earlier push has been through its stream.
    let services: Api<Service> = Api::namespaced(client.clone(), ns);
    let add_port = |name: &'static str, first: u16, second: u16| {
        let services = services.clone();
        async move {
            services
                .patch(
                    name,
                    &PatchParams::default(),
                    &Patch::Merge(json!({"spec": {"ports": [
                        {"name": "http", "port": first},
                        {"name": "http-alt", "port": second}
                    ]}})),
                )
                .await
                .expect("add a port")
        }
    };
    let push_count = |status: &Value| status["status"]["pushes"].as_u64().unwrap_or(0);
    let (cds, lds, published) = (
        pushes(&discovery, "cds").await,
        pushes(&discovery, "lds").await,
        push_count(&status),
    );
    add_port("b", port_b, free_port().expect("port")).await;
    wait::until("b's change to be pushed", CONVERGE, || async {
        let status = discovery
            .json("/debug/push_status")
            .await
            .map_err(|e| e.to_string())?;
        Ok((push_count(&status) > published).then_some(()))
    })
    .await
    .expect("b's change published");
    let port_a2 = free_port().expect("port");
    add_port("a", port_a, port_a2).await;
    wait::until("a's new port to listen", CONVERGE, || async {
        let addr = SocketAddr::from(([127, 0, 0, 1], port_a2));
        Ok(http_client::get(addr, &host_a, "/", REQUEST_TIMEOUT)
            .await
            .ok()
            .map(|_| ()))
    })
    .await
    .expect("a's new port");
    assert_eq!(
        pushes(&discovery, "cds").await,
        cds + 1.0,
        "clusters were sent once, for a's change alone"
    );
    assert_eq!(
        pushes(&discovery, "lds").await,
        lds + 1.0,
        "listeners were sent once, for a's change alone"
    );

    label(Value::Null).await;
    wait_bodies(port_b, &host_b, &["b"])
        .await
        .expect("b back once the label is gone");
    sidecar.check_running().expect("sidecar still running");
}

/// With `--discovery-selectors`, only the namespaces whose labels a selector
/// picks are read: a Service elsewhere gets no listener until its namespace
/// is labelled, and loses it when the label changes, with no restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discovery_selectors_read_only_the_namespaces_they_pick() {
    let api = KubeApi::start().await.expect("API server");
    let client = api.client().await.expect("client");
    let web = Upstream::start_free(POD_IP, "web").await.expect("web");
    let exp = Upstream::start_free(POD_IP, "exp").await.expect("exp");
    let (port_web, port_exp) = (free_port().expect("port"), free_port().expect("port"));
    create_yaml(
        &client,
        "apiVersion: v1\nkind: Namespace\nmetadata: {name: shop, labels: {mesh: enabled}}\n---\n\
         apiVersion: v1\nkind: Namespace\nmetadata: {name: lab}\n",
    )
    .await
    .expect("namespaces");
    service_with_endpoint(&client, "web", "shop", port_web, &web).await;
    service_with_endpoint(&client, "exp", "lab", port_exp, &exp).await;

    let work = tempfile::tempdir().expect("tempdir");
    let discovery = kube_only_discovery(
        &api,
        work.path(),
        &["--discovery-selectors", "mesh=enabled"],
    )
    .await;
    let mut sidecar = start_sidecar(discovery.grpc, work.path(), "shop").expect("sidecar");
    let (host_web, host_exp) = (host("web", "shop"), host("exp", "lab"));
    wait_bodies(port_web, &host_web, &["web"])
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", sidecar.log()));
    assert!(
        bodies(port_exp, &host_exp, 1).await.is_err(),
        "lab is not selected: no listener for its service"
    );
    let services = |configz: &Value| -> Vec<String> {
        configz_keys(configz)
            .into_iter()
            .filter(|k| k.starts_with("Service "))
            .collect()
    };
    let configz = discovery.json("/debug/configz").await.expect("configz");
    assert_eq!(services(&configz), ["Service shop/web"], "{configz}");

    let namespaces: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(client.clone());
    let label = |value: &'static str| {
        let namespaces = namespaces.clone();
        async move {
            namespaces
                .patch(
                    "lab",
                    &PatchParams::default(),
                    &Patch::Merge(json!({"metadata": {"labels": {"mesh": value}}})),
                )
                .await
                .expect("relabel namespace")
        }
    };
    label("enabled").await;
    wait_bodies(port_exp, &host_exp, &["exp"])
        .await
        .expect("lab's service routes once lab is selected");
    label("disabled").await;
    wait_unreachable(port_exp, &host_exp)
        .await
        .expect("lab's service gone once lab is not selected");
    assert_eq!(
        bodies(port_web, &host_web, 20).await.expect("web routes"),
        BTreeSet::from(["web".to_string()])
    );
    sidecar.check_running().expect("sidecar still running");
}
