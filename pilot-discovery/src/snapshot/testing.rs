//! Snapshots from YAML for the tests of every layer above the builder:
//! objects decoded as both sources decode them, built as a push builds
//! them.

use mesh_model::MeshSnapshot;

use super::build::build_snapshot;
use crate::objects::decode;
use crate::resource::ResourceMap;

/// The resources of `yaml`, one or more documents (JSON is YAML too).
/// Panics on anything the sources would reject: a fixture must be valid.
pub fn resources_of(yaml: &str) -> ResourceMap {
    let mut out = ResourceMap::new();
    for value in mesh_model::yaml::documents(yaml).expect("valid YAML") {
        let r = decode(value).unwrap_or_else(|e| panic!("a valid resource: {e}"));
        out.insert(r.key(), r);
    }
    out
}

/// The snapshot of `yaml` alone (version 1, domain `cluster.local`).
pub fn snapshot_of(yaml: &str) -> MeshSnapshot {
    build_snapshot(1, "cluster.local", &[&resources_of(yaml)], None)
}

/// Service `a` (a STATIC ServiceEntry in `default`, HTTP on port 80)
/// with one endpoint, written as `endpoint`, a YAML flow mapping.
pub fn one_service(endpoint: &str) -> MeshSnapshot {
    snapshot_of(&format!(
        "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {{name: a, namespace: default}}\n\
         spec:\n  hosts: [a.default.svc.cluster.local]\n  resolution: STATIC\n\
         \x20 ports: [{{number: 80, name: http, protocol: HTTP}}]\n\
         \x20 endpoints: [{endpoint}]\n"
    ))
}
