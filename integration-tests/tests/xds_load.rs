//! The load client's smoke run: a synthetic mesh, twenty sidecars on each
//! ADS flavour against the real pilot-discovery binary. Checks correctness
//! only (every proxy complete and consistent, changes reach exactly the
//! proxies they concern); timings belong to `make bench`.

use std::time::Duration;

use integration_tests::discovery::Discovery;
use integration_tests::load::record::{EDS, RDS};
use integration_tests::load::{Expect, Flavour, Fleet};
use integration_tests::synth::{Revision, SynthMesh};

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
