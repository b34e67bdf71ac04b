//! S4 of `make bench`: the generators at Istio's benchmark sizes, each run
//! building the Envoy messages and encoding them, as the server does on a
//! cache miss.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::Path;

use criterion::{criterion_group, criterion_main, Criterion};
use mesh_model::MeshSnapshot;
use pilot_discovery::configdir::parse_file;
use pilot_discovery::snapshot::build_snapshot;
use pilot_discovery::xds::generate::generators::generate;
use pilot_discovery::xds::generate::proxy::Proxy;
use xds_proto::pb::envoy::config::core::v3::Node;
use xds_proto::type_url;

// The generators run in the server under its allocator; measured under
// another, their figures would not be the server's.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn snapshot(yaml: &str) -> MeshSnapshot {
    let parsed = match parse_file(Path::new("bench.yaml"), yaml) {
        Ok(p) => p,
        Err(e) => panic!("benchmark config does not parse: {e}"),
    };
    assert!(parsed.errors.is_empty(), "{:?}", parsed.errors);
    let resources = parsed.resources.into_iter().map(|r| (r.key(), r)).collect();
    build_snapshot(1, "cluster.local", &[&resources], None)
}

/// One service with `n` endpoints.
fn wide_service(n: usize) -> MeshSnapshot {
    let mut y = String::from(
        "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: big, namespace: default}\n\
         spec:\n  hosts: [big.default.svc.cluster.local]\n  resolution: STATIC\n\
         \x20 ports: [{number: 80, name: http, protocol: HTTP}]\n  endpoints:\n",
    );
    for i in 0..n {
        let _ = writeln!(
            y,
            "  - {{address: 10.{}.{}.{}}}",
            i >> 16,
            (i >> 8) & 0xff,
            i & 0xff
        );
    }
    snapshot(&y)
}

/// `n` HTTP services on port 80, one endpoint each.
fn many_services(n: usize) -> MeshSnapshot {
    let mut y = String::new();
    for i in 0..n {
        let _ = write!(
            y,
            "---\napiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {{name: s{i}, namespace: default}}\n\
             spec:\n  hosts: [s{i}.default.svc.cluster.local]\n  resolution: STATIC\n\
             \x20 ports: [{{number: 80, name: http, protocol: HTTP}}]\n  endpoints: [{{address: 10.0.0.1}}]\n"
        );
    }
    snapshot(&y)
}

fn proxy() -> Proxy {
    let node = Node {
        id: "sidecar~10.0.0.9~bench.default~default.svc.cluster.local".into(),
        ..Default::default()
    };
    match Proxy::from_node(&node) {
        Ok(p) => p,
        Err(e) => panic!("benchmark node id: {e}"),
    }
}

fn generators(c: &mut Criterion) {
    let proxy = proxy();
    let mut g = c.benchmark_group("generate");

    let wide = wide_service(1000);
    let cla = BTreeSet::from(["outbound|80||big.default.svc.cluster.local".to_string()]);
    let made = generate(&wide, &proxy, type_url::ENDPOINT, &cla);
    assert!(
        made[0].resource.value.len() > 1000 * 10,
        "1000 endpoints encoded"
    );
    g.bench_function("cla_1000_endpoints", |b| {
        b.iter(|| generate(&wide, &proxy, type_url::ENDPOINT, &cla))
    });

    let many = many_services(1000);
    let none = BTreeSet::<String>::new();
    let outbound = generate(&many, &proxy, type_url::CLUSTER, &none)
        .iter()
        .filter(|c| c.name.starts_with("outbound|"))
        .count();
    assert_eq!(outbound, 1000, "one outbound cluster per service");
    g.bench_function("clusters_1000", |b| {
        b.iter(|| generate(&many, &proxy, type_url::CLUSTER, &none))
    });

    let route = BTreeSet::from(["80".to_string()]);
    g.bench_function("routes_1000_vhosts", |b| {
        b.iter(|| generate(&many, &proxy, type_url::ROUTE, &route))
    });
    g.finish();
}

criterion_group!(benches, generators);
criterion_main!(benches);
