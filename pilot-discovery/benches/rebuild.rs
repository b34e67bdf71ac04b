//! The snapshot rebuild after one endpoint change, at `make bench`'s mesh
//! size (1,000 services of 10 WorkloadEntries each, with a DestinationRule
//! and a VirtualService): what S2 pays per debounced burst before any push.

use std::fmt::Write as _;
use std::path::Path;

use criterion::{criterion_group, criterion_main, Criterion};
use pilot_discovery::configdir::parse_file;
use pilot_discovery::resource::{Resource, ResourceMap};
use pilot_discovery::snapshot::{build_snapshot, build_snapshot_with, Conversions};

// The rebuild runs in the server under its allocator; measured under
// another, its figures would not be the server's.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const SERVICES: usize = 1000;
const ENDPOINTS: usize = 10;
const NAMESPACES: usize = 10;

fn workload_entry(i: usize, e: usize, port: usize) -> String {
    format!(
        "---\napiVersion: networking.istio.io/v1\nkind: WorkloadEntry\n\
         metadata: {{name: svc-{i}-{e}, namespace: ns-{}}}\n\
         spec: {{address: 10.{}.{}.{e}, ports: {{http: {port}}}, labels: {{app: svc-{i}, version: v{}}}}}\n",
        i % NAMESPACES,
        i / 250,
        i % 250,
        1 + e % 2
    )
}

fn mesh() -> String {
    let mut y = String::new();
    for i in 0..SERVICES {
        let ns = i % NAMESPACES;
        let _ = write!(
            y,
            "---\napiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {{name: svc-{i}, namespace: ns-{ns}}}\n\
             spec:\n  hosts: [svc-{i}]\n  location: MESH_INTERNAL\n  resolution: STATIC\n\
             \x20 ports: [{{number: 80, name: http, protocol: HTTP}}]\n  workloadSelector: {{labels: {{app: svc-{i}}}}}\n\
             ---\napiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {{name: svc-{i}, namespace: ns-{ns}}}\n\
             spec:\n  host: svc-{i}\n  subsets: [{{name: v1, labels: {{version: v1}}}}, {{name: v2, labels: {{version: v2}}}}]\n\
             ---\napiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {{name: svc-{i}, namespace: ns-{ns}}}\n\
             spec:\n  hosts: [svc-{i}]\n  http:\n  - route:\n    - {{destination: {{host: svc-{i}, subset: v1}}, weight: 90}}\n\
             \x20   - {{destination: {{host: svc-{i}, subset: v2}}, weight: 10}}\n"
        );
        for e in 0..ENDPOINTS {
            y.push_str(&workload_entry(i, e, 8080));
        }
    }
    y
}

fn parse(yaml: &str) -> Vec<Resource> {
    match parse_file(Path::new("bench.yaml"), yaml) {
        Ok(p) if p.errors.is_empty() => p.resources,
        Ok(p) => panic!("benchmark config has errors: {:?}", p.errors),
        Err(e) => panic!("benchmark config does not parse: {e}"),
    }
}

fn rebuild(c: &mut Criterion) {
    let mut resources: ResourceMap = parse(&mesh()).into_iter().map(|r| (r.key(), r)).collect();
    let first = build_snapshot(1, "cluster.local", &[&resources], None);
    assert_eq!(first.services.len(), SERVICES);

    let mut g = c.benchmark_group("rebuild");
    g.sample_size(30);
    g.bench_function("from_nothing", |b| {
        b.iter(|| build_snapshot(2, "cluster.local", &[&resources], Some(&first)))
    });

    // One WorkloadEntry's port changes between builds, as in S2.
    let mut conversions = Conversions::default();
    build_snapshot_with(1, "cluster.local", &[&resources], None, &mut conversions);
    let mut port = 8080;
    g.bench_function("one_workload_entry_changed", |b| {
        b.iter(|| {
            port = if port == 8080 { 8081 } else { 8080 };
            for r in parse(&workload_entry(7, 0, port)) {
                resources.insert(r.key(), r);
            }
            build_snapshot_with(
                2,
                "cluster.local",
                &[&resources],
                Some(&first),
                &mut conversions,
            )
        })
    });
    g.finish();
}

criterion_group!(benches, rebuild);
criterion_main!(benches);
