//! One snapshot from the resources of every source: services first, then
//! the rules that refer to them, then the endpoints, as Istio combines them.

use std::sync::Arc;

use mesh_model::{IstioConfig, MeshSnapshot};

use super::conversions::{self, Conversions};
use super::workload_index::WorkloadIndex;
use super::{destination_rules, kube, ports, services, virtual_services};
use crate::resource::{Resource, ResourceMap};
use crate::sources::SourceSet;

/// Builds one immutable snapshot from every resource in force, source by
/// source. A key held by two sources is read from the first that holds it.
/// `previous`, the snapshot this one replaces, holds the last good version
/// of a resource that only a look at the others rejects.
pub fn build_snapshot(
    version: u64,
    domain: &str,
    sources: &[&ResourceMap],
    previous: Option<&MeshSnapshot>,
) -> MeshSnapshot {
    build_snapshot_with(
        version,
        domain,
        sources,
        previous,
        &mut Conversions::default(),
    )
}

/// [`build_snapshot`], reusing what the last build that used `conversions`
/// converted wherever its inputs are unchanged. The result is the same.
pub fn build_snapshot_with(
    version: u64,
    domain: &str,
    sources: &[&ResourceMap],
    previous: Option<&MeshSnapshot>,
    conversions: &mut Conversions,
) -> MeshSnapshot {
    let mut snap = MeshSnapshot {
        version,
        domain: domain.to_string(),
        ..Default::default()
    };
    let resources = || {
        sources.iter().enumerate().flat_map(move |(i, map)| {
            map.iter()
                .filter(move |(k, _)| !sources[..i].iter().any(|m| m.contains_key(*k)))
                .map(|(_, r)| r)
        })
    };
    let mut workload_entries = WorkloadIndex::default();
    let mut workloads = kube::WorkloadLookup::default();
    let mut slices = Vec::new();
    let mut kube_endpoints = Vec::new();
    for r in resources() {
        match r {
            Resource::Istio(IstioConfig::WorkloadEntry(we)) => workload_entries.add(we),
            Resource::EndpointSlice(s) => slices.push(s.as_ref()),
            Resource::KubeEndpoints(e) => kube_endpoints.push(e.as_ref()),
            Resource::Pod(p) => {
                workloads.add_pod(p);
                snap.pod_labels
                    .insert(p.proxy_key(), Arc::new(p.labels.clone()));
            }
            Resource::Node(n) => workloads.add_node(n),
            _ => {}
        }
    }
    // Services and rules are combined oldest first, as Istio combines them.
    conversions.begin(domain, &workload_entries);
    let mut defined = Vec::new();
    let mut virtual_services = Vec::new();
    let mut destination_rules = Vec::new();
    for r in resources() {
        match r {
            Resource::Istio(IstioConfig::ServiceEntry(se)) => {
                let precedence = owned(se.meta.precedence());
                for (svc, eps) in conversions.convert(se, &workload_entries) {
                    defined.push((precedence.clone(), svc.clone(), eps.clone()));
                }
            }
            Resource::KubeService(ks) => {
                if let Some((svc, eps)) = kube::convert_service(ks, domain) {
                    let m = &ks.metadata;
                    let created = m.creation_timestamp.as_ref().map(|t| t.0.to_string());
                    let precedence = owned((
                        created.as_deref(),
                        m.name.as_deref().unwrap_or_default(),
                        m.namespace.as_deref().unwrap_or_default(),
                    ));
                    defined.push((precedence, Arc::new(svc), Arc::new(eps)));
                }
            }
            Resource::Istio(IstioConfig::VirtualService(vs)) => virtual_services.push(vs.clone()),
            Resource::Istio(IstioConfig::Sidecar(sc)) => snap.sidecars.push(sc.clone()),
            Resource::Istio(IstioConfig::Gateway(gw)) => snap.gateways.push(gw.clone()),
            Resource::Istio(IstioConfig::DestinationRule(dr)) => destination_rules.push(dr.clone()),
            Resource::Istio(IstioConfig::WorkloadEntry(_))
            | Resource::EndpointSlice(_)
            | Resource::KubeEndpoints(_)
            | Resource::Pod(_)
            | Resource::Node(_)
            | Resource::Namespace(_) => {}
        }
    }
    conversions.finish();
    let mut problems = Vec::new();
    defined.sort_by(|a, b| a.0.cmp(&b.0));
    for (_, svc, eps) in defined {
        services::insert(&mut snap, svc, eps, &mut problems);
    }
    snap.destination_rules = destination_rules::by_host(destination_rules, domain, &mut problems);
    snap.virtual_services = virtual_services::in_force(
        virtual_services,
        &snap.destination_rules,
        domain,
        previous,
        &mut problems,
    );
    ports::report_shared_tcp_ports(&snap, &mut problems);
    problems.sort();
    problems.dedup();
    snap.problems = problems;
    let converted = slices
        .into_iter()
        .flat_map(|s| kube::convert_slice(s, &snap.services, &workloads, domain))
        .chain(
            kube_endpoints
                .into_iter()
                .flat_map(|e| kube::convert_endpoints(e, &snap.services, &workloads, domain)),
        )
        .collect::<Vec<_>>();
    for ep in converted {
        let eps = snap.endpoints.entry(ep.service.clone()).or_default();
        Arc::make_mut(eps).push(ep);
    }
    // Lists taken whole from a ServiceEntry's conversion are sorted already;
    // those of Kubernetes Services, and those merged or added to here, may
    // need it.
    for eps in snap.endpoints.values_mut() {
        if !conversions::endpoints_sorted(eps) {
            conversions::sort_endpoints(Arc::make_mut(eps).as_mut_slice());
        }
    }
    snap
}

/// A [`mesh_model::ConfigMeta::precedence`] key that outlives its
/// resource, so services from every source sort together in Istio's order.
fn owned(
    (created, name, namespace): (Option<&str>, &str, &str),
) -> (Option<String>, String, String) {
    (
        created.map(str::to_string),
        name.to_string(),
        namespace.to_string(),
    )
}

/// A snapshot of everything `sources` hold right now, replacing
/// `previous`; `conversions` carries work over from the last build.
pub fn build_from(
    sources: &SourceSet,
    version: u64,
    domain: &str,
    previous: Option<&MeshSnapshot>,
    conversions: &mut Conversions,
) -> MeshSnapshot {
    let states = sources.current();
    let maps: Vec<&ResourceMap> = states.iter().map(|s| &s.resources).collect();
    build_snapshot_with(version, domain, &maps, previous, conversions)
}
