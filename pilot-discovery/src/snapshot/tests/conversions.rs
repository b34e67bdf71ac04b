//! Conversions reused between builds give what converting everything gives.

use std::sync::Arc;

use mesh_model::{ConfigKey, Hostname, IstioConfig, MeshSnapshot};

use crate::resource::Resource;
use crate::snapshot::conversions::Conversions;
use crate::snapshot::testing::resources_of;
use crate::snapshot::{build_snapshot, build_snapshot_with};

const DOMAIN: &str = "cluster.local";

type Resources = crate::resource::ResourceMap;

fn remove_named(resources: &mut Resources, name: &str) {
    let keys: Vec<ConfigKey> = resources
        .keys()
        .filter(|k| k.name == name)
        .cloned()
        .collect();
    for k in keys {
        resources.remove(&k);
    }
}

fn put(resources: &mut Resources, yaml: &str) {
    resources.extend(resources_of(yaml));
}

fn service_entry(i: u64, app: u64, dns: bool, second_port: bool) -> String {
    let ports = if second_port {
        "[{number: 80, name: http, protocol: HTTP}, {number: 9090, name: grpc, protocol: GRPC}]"
    } else {
        "[{number: 80, name: http, protocol: HTTP}]"
    };
    format!(
        "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\n\
             metadata: {{name: se-{i}, namespace: ns{}}}\n\
             spec:\n  hosts: [h{}]\n  resolution: {}\n  ports: {ports}\n\
             \x20 workloadSelector: {{labels: {{app: a{app}}}}}\n",
        i % 2,
        i % 4,
        if dns { "DNS" } else { "STATIC" },
    )
}

fn workload_entry(j: u64, ns: u64, app: u64, port: u64, last_octet: u64) -> String {
    format!(
        "apiVersion: networking.istio.io/v1\nkind: WorkloadEntry\n\
             metadata: {{name: we-{j}, namespace: ns{ns}}}\n\
             spec: {{address: 10.0.{j}.{last_octet}, ports: {{http: {port}}}, \
             labels: {{app: a{app}, version: v{}}}}}\n",
        port % 2
    )
}

/// A Kubernetes Service owning `h0` of `ns0`, which displaces the
/// entries naming it, with endpoints of its own.
const KUBE: &str = "apiVersion: v1\nkind: Service\nmetadata: {name: h0, namespace: ns0}\n\
        spec:\n  ports: [{name: http, port: 80, targetPort: 8080}]\n---\n\
        apiVersion: v1\nkind: Endpoints\nmetadata: {name: h0, namespace: ns0}\n\
        subsets:\n- addresses: [{ip: 10.9.0.2}, {ip: 10.9.0.1}]\n  ports: [{name: http, port: 8080}]\n";

fn json(snap: &MeshSnapshot) -> serde_json::Value {
    serde_json::to_value(snap).expect("a snapshot serializes")
}

/// Random edits of entries, workloads and a Kubernetes Service, each
/// parsed anew (a new `Arc`, as a source makes on a change), sometimes
/// to the same contents. After every one, a build reusing the last
/// build's conversions must equal one made from nothing.
#[test]
fn reusing_conversions_builds_what_converting_everything_builds() {
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut random = |n: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % n
    };
    let mut resources = Resources::new();
    for i in 0..6 {
        put(&mut resources, &service_entry(i, i % 3, false, false));
    }
    for j in 0..16 {
        put(&mut resources, &workload_entry(j, j % 2, j % 3, 8000, 1));
    }
    let mut conversions = Conversions::default();
    let mut kept = build_snapshot_with(1, DOMAIN, &[&resources], None, &mut conversions);
    let mut rebuilt_at_least_one = false;
    for step in 0..400u64 {
        match random(7) {
            0 => put(
                &mut resources,
                &service_entry(random(6), random(3), random(4) == 0, random(3) == 0),
            ),
            1 | 2 => put(
                &mut resources,
                &workload_entry(
                    random(16),
                    random(2),
                    random(3),
                    8000 + random(3),
                    random(3),
                ),
            ),
            3 => {
                let j = random(16);
                remove_named(&mut resources, &format!("we-{j}"));
            }
            4 => {
                let i = random(6);
                remove_named(&mut resources, &format!("se-{i}"));
            }
            5 => {
                if resources
                    .keys()
                    .any(|k| k.kind == mesh_model::ConfigKind::Service)
                {
                    remove_named(&mut resources, "h0");
                } else {
                    put(&mut resources, KUBE);
                }
            }
            // The same contents, parsed again: equal, but not the same `Arc`.
            _ => {
                let j = random(16);
                let key = resources
                    .keys()
                    .find(|k| k.name == format!("we-{j}"))
                    .cloned();
                if let Some(Resource::Istio(IstioConfig::WorkloadEntry(we))) =
                    key.and_then(|k| resources.get(&k).cloned())
                {
                    let copy = Arc::new((*we).clone());
                    resources.insert(
                        we.key(mesh_model::ConfigKind::WorkloadEntry),
                        Resource::Istio(IstioConfig::WorkloadEntry(copy)),
                    );
                }
            }
        }
        let version = step + 2;
        let fresh = build_snapshot(version, DOMAIN, &[&resources], Some(&kept));
        let next = build_snapshot_with(
            version,
            DOMAIN,
            &[&resources],
            Some(&kept),
            &mut conversions,
        );
        assert_eq!(json(&next), json(&fresh), "step {step}");
        assert_eq!(
            next.changes_since(&kept),
            fresh.changes_since(&kept),
            "step {step}"
        );
        rebuilt_at_least_one |= next.endpoints.values().any(|e| e.len() > 1);
        kept = next;
    }
    assert!(
        rebuilt_at_least_one,
        "the edits must give services endpoints"
    );
}

#[test]
fn a_workload_change_reconverts_only_the_entries_that_may_select_it() {
    let mut resources = Resources::new();
    // se-0 in ns0 selects app a0; se-1 in ns1 selects app a1.
    put(&mut resources, &service_entry(0, 0, false, false));
    put(&mut resources, &service_entry(1, 1, false, false));
    put(&mut resources, &workload_entry(0, 0, 0, 8000, 1));
    put(&mut resources, &workload_entry(1, 1, 1, 8000, 1));
    let mut conversions = Conversions::default();
    let first = build_snapshot_with(1, DOMAIN, &[&resources], None, &mut conversions);
    assert_eq!(conversions.kept(), 2);

    put(&mut resources, &workload_entry(0, 0, 0, 8001, 1));
    let second = build_snapshot_with(2, DOMAIN, &[&resources], Some(&first), &mut conversions);
    let (changed, untouched) = (
        Hostname::from("h0.ns0.svc.cluster.local"),
        Hostname::from("h1.ns1.svc.cluster.local"),
    );
    assert!(Arc::ptr_eq(
        &first.endpoints[&untouched],
        &second.endpoints[&untouched]
    ));
    assert!(Arc::ptr_eq(
        &first.services[&untouched],
        &second.services[&untouched]
    ));
    assert!(!Arc::ptr_eq(
        &first.endpoints[&changed],
        &second.endpoints[&changed]
    ));
    assert_eq!(second.endpoints[&changed][0].port, 8001);
    let change = second.changes_since(&first);
    assert!(!change.config, "the service itself is unchanged");
    assert_eq!(
        change.endpoints.into_iter().collect::<Vec<_>>(),
        vec![changed]
    );

    // A removed entry's conversion is not kept past the next build.
    remove_named(&mut resources, "se-1");
    build_snapshot_with(3, DOMAIN, &[&resources], Some(&second), &mut conversions);
    assert_eq!(conversions.kept(), 1);
}
