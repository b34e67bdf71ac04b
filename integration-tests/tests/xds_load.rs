//! The load client's smoke run: a synthetic mesh, twenty sidecars on each
//! ADS flavour against the real pilot-discovery binary. Checks correctness
//! only (every proxy complete and consistent, changes reach exactly the
//! proxies they concern); timings belong to `make bench`.

use std::time::Duration;

use integration_tests::discovery::Discovery;
use integration_tests::kube_api::{create_yaml, manifests_dir, KubeApi};
use integration_tests::load::record::{EDS, RDS};
use integration_tests::load::{Expect, Flavour, Fleet};
use integration_tests::ports::free_port;
use integration_tests::synth::{Form, Revision, SynthMesh};
use k8s_openapi::api::core::v1::{Endpoints, Service};
use kube::api::{Api, DeleteParams, Patch, PatchParams};

const DEADLINE: Duration = Duration::from_secs(60);
const PROXIES: usize = 20;
const NAMESPACES: usize = 3;

fn expect(mesh: &SynthMesh) -> Expect {
    Expect {
        clusters: mesh.expected_clusters(),
        endpoints: mesh.services * 3,
        listeners: 1,
        routes: 1,
    }
}

/// Per proxy, the fingerprint of what it holds of type `t`.
fn prints(fleet: &Fleet, t: usize) -> Vec<(String, (usize, u64))> {
    fleet.each(|p, r| (p.namespace.clone(), r.fingerprint(t)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_proxy_gets_a_complete_consistent_config_and_only_its_changes() {
    let work = tempfile::tempdir().expect("temp dir");
    let dir = work.path().join("mesh");
    let mesh = SynthMesh::new(50, 4, NAMESPACES);
    mesh.write(&dir).expect("mesh written");
    let discovery = Discovery::start(&dir, &work.path().join("discovery.log"), &[])
        .await
        .expect("pilot-discovery starts");

    let sotw = Fleet::start(
        discovery.grpc_addr(),
        PROXIES,
        Flavour::Sotw,
        NAMESPACES,
        None,
    );
    let delta = Fleet::start(
        discovery.grpc_addr(),
        PROXIES,
        Flavour::Delta,
        NAMESPACES,
        None,
    );
    for fleet in [&sotw, &delta] {
        fleet
            .wait_complete(DEADLINE)
            .await
            .expect("configs complete");
        fleet.check_consistent(expect(&mesh)).expect("consistent");
    }
    // Both flavours deliver the same config to proxies of one namespace.
    for t in 0..4 {
        let a = prints(&sotw, t);
        let b = prints(&delta, t);
        assert_eq!(a, b, "sotw and delta proxies hold different type {t}");
    }

    // An endpoint of service 7 moves; service 8's routing changes. Service 8
    // lives in one namespace and its VirtualService is exported only there.
    let routed_ns = mesh.namespace_of(8);
    let eds_before = prints(&sotw, EDS);
    let rds_before = prints(&sotw, RDS);
    mesh.write_service(
        &dir,
        7,
        Revision {
            endpoint: 1,
            routing: 0,
        },
    )
    .expect("endpoint change");
    mesh.write_service(
        &dir,
        8,
        Revision {
            endpoint: 0,
            routing: 1,
        },
    )
    .expect("routing change");
    for fleet in [&sotw, &delta] {
        fleet
            .wait_until("every proxy has the changes", DEADLINE, |f| {
                f.all(|p, r| {
                    let eds_moved = eds_before.iter().all(|(_, b)| *b != r.fingerprint(EDS));
                    let rds_moved = rds_before
                        .iter()
                        .filter(|(ns, _)| *ns == p.namespace)
                        .all(|(_, b)| *b != r.fingerprint(RDS));
                    eds_moved && (p.namespace != routed_ns || rds_moved)
                })
            })
            .await
            .expect("changes arrive");
    }

    // A second endpoint change is a barrier: once it has arrived, any push of
    // the routing change would have arrived before it.
    let barrier = prints(&sotw, EDS);
    mesh.write_service(
        &dir,
        9,
        Revision {
            endpoint: 2,
            routing: 0,
        },
    )
    .expect("barrier change");
    for fleet in [&sotw, &delta] {
        fleet
            .wait_until("the barrier change arrives", DEADLINE, |f| {
                f.all(|_, r| barrier.iter().all(|(_, b)| *b != r.fingerprint(EDS)))
            })
            .await
            .expect("barrier arrives");
        fleet
            .check_consistent(expect(&mesh))
            .expect("still consistent");
        let now = prints(fleet, RDS);
        for ((ns, before), (_, after)) in rds_before.iter().zip(&now) {
            if *ns == routed_ns {
                assert_ne!(before, after, "a proxy in {ns} kept the old routes");
            } else {
                assert_eq!(
                    before, after,
                    "a proxy in {ns} got routes of a VirtualService exported only to {routed_ns}"
                );
            }
        }
    }
    sotw.stop().await;
    delta.stop().await;
}

/// The same synthetic mesh as Kubernetes objects in a real API server: every
/// proxy gets the complete config the Istio form gives, and an endpoint
/// change made through the API reaches all of them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_kubernetes_form_through_an_api_server_gives_complete_consistent_configs() {
    let mesh = SynthMesh::new(30, 4, NAMESPACES).in_form(Form::Kubernetes);
    let api = KubeApi::start().await.expect("API server");
    let client = api.client().await.expect("client");
    // Only the synthetic services: not the API server's own.
    Api::<Service>::namespaced(client.clone(), "default")
        .delete("kubernetes", &DeleteParams::default())
        .await
        .expect("delete the kubernetes Service");
    let crds = std::fs::read_to_string(manifests_dir().join("crds.yaml")).expect("crds.yaml");
    let mut objects = crds;
    objects.push_str("\n---\n");
    objects.push_str(&mesh.render_namespaces());
    for i in 0..mesh.services {
        objects.push_str(&mesh.render(i, Revision::default()));
        objects.push_str("---\n");
    }
    create_yaml(&client, &objects).await.expect("mesh created");

    let work = tempfile::tempdir().expect("temp dir");
    let kubeconfig = api.kubeconfig.to_str().expect("utf-8 path").to_string();
    let mut discovery = Discovery::spawn(
        free_port().expect("port"),
        &work.path().join("discovery.log"),
        &["--registries", "Kubernetes", "--kubeconfig", &kubeconfig],
    )
    .expect("pilot-discovery");
    discovery.wait_ready().await.expect("ready");
    let fleet = Fleet::start(
        discovery.grpc_addr(),
        PROXIES,
        Flavour::Delta,
        NAMESPACES,
        None,
    );
    fleet
        .wait_complete(DEADLINE)
        .await
        .expect("configs complete");
    fleet.check_consistent(expect(&mesh)).expect("consistent");

    let before = prints(&fleet, EDS);
    let moved: serde_json::Value = mesh_model::yaml::from_str(&mesh.render_endpoints(
        5,
        Revision {
            endpoint: 1,
            routing: 0,
        },
    ))
    .expect("endpoints YAML");
    Api::<Endpoints>::namespaced(client.clone(), &mesh.namespace_of(5))
        .patch(
            &mesh.name(5),
            &PatchParams::default(),
            &Patch::Merge(&moved),
        )
        .await
        .expect("endpoint change");
    fleet
        .wait_until("every proxy has the endpoint change", DEADLINE, |f| {
            f.all(|_, r| before.iter().all(|(_, b)| *b != r.fingerprint(EDS)))
        })
        .await
        .expect("change arrives");
    fleet
        .check_consistent(expect(&mesh))
        .expect("still consistent");
    fleet.stop().await;
}
