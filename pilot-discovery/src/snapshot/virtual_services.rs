//! Which VirtualServices are in force, in which order, and what is reported
//! about them.
//!
//! Order is Istio's: oldest first, then by name, then namespace. Sidecars
//! use the first VirtualService that routes a host and gateways merge them
//! in this order, so two VirtualServices for one host are reported.
//!
//! A VirtualService that sends traffic to a subset no DestinationRule
//! defines is rejected: its last good version keeps serving, or, if it never
//! had one, it is left out. Only when the VirtualService itself did not
//! change (a DestinationRule lost the subset) does it stay in force as
//! written, with a warning: rejecting a resource for another's edit would
//! surprise its owner.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use mesh_model::istio::{DestinationRule, VirtualService};
use mesh_model::{Config, ConfigKind, Hostname, MeshSnapshot, Problem, Severity};

type Vs = Arc<Config<VirtualService>>;

/// The VirtualServices of `candidates` in force, in precedence order.
pub fn in_force(
    mut candidates: Vec<Vs>,
    destination_rules: &BTreeMap<Hostname, Arc<Config<DestinationRule>>>,
    domain: &str,
    previous: Option<&MeshSnapshot>,
    problems: &mut Vec<Problem>,
) -> Vec<Vs> {
    candidates.sort_by(|a, b| a.meta.precedence().cmp(&b.meta.precedence()));
    let mut out = Vec::with_capacity(candidates.len());
    for vs in candidates {
        let dangling = dangling_subsets(&vs, destination_rules, domain);
        if dangling.is_empty() {
            out.push(vs);
            continue;
        }
        let key = vs.key(ConfigKind::VirtualService);
        let last = previous.and_then(|p| {
            p.virtual_services
                .iter()
                .find(|v| v.meta.name == vs.meta.name && v.meta.namespace == vs.meta.namespace)
        });
        let unchanged = last.is_some_and(|l| **l == *vs);
        let last_good = last
            .filter(|l| !unchanged && dangling_subsets(l, destination_rules, domain).is_empty());
        let (severity, outcome) = match (unchanged, last_good) {
            (true, _) => (Severity::Warning, "its routes to it fail until one does"),
            (false, Some(_)) => (
                Severity::Rejected,
                "this version is rejected; the last good version keeps serving",
            ),
            (false, None) => (
                Severity::Rejected,
                "this version is rejected, and there is no good version to keep",
            ),
        };
        for (field, host, subset) in dangling {
            problems.push(Problem {
                severity,
                resource: key.clone(),
                field: Some(field),
                message: format!(
                    "subset {subset:?} of host {host} is not defined by any DestinationRule; \
                     {outcome}"
                ),
            });
        }
        if unchanged {
            out.push(vs);
        } else if let Some(l) = last_good {
            out.push(l.clone());
        }
    }
    report_shared_hosts(&out, domain, problems);
    out
}

/// Every destination of `vs` naming a subset its host's DestinationRule
/// lacks: (field, host, subset).
fn dangling_subsets(
    vs: &Config<VirtualService>,
    destination_rules: &BTreeMap<Hostname, Arc<Config<DestinationRule>>>,
    domain: &str,
) -> Vec<(String, Hostname, String)> {
    // Where each destination sits, as (protocol, rule, route); `None`
    // for an HTTP mirror. Written out only for the few that dangle: this
    // runs over every VirtualService on every rebuild.
    let spec = &vs.spec;
    let http = spec.http.iter().enumerate().flat_map(|(i, r)| {
        let routes = r
            .route
            .iter()
            .enumerate()
            .map(move |(j, d)| (("http", i, Some(j)), &d.destination));
        let mirror = r.mirror.iter().map(move |d| (("http", i, None), d));
        routes.chain(mirror)
    });
    let tcp = spec.tcp.iter().enumerate().flat_map(|(i, r)| {
        r.route
            .iter()
            .enumerate()
            .map(move |(j, d)| (("tcp", i, Some(j)), &d.destination))
    });
    let mut buffer = String::new();
    http.chain(tcp)
        .filter(|(_, d)| !d.subset.is_empty())
        .filter_map(|((protocol, i, j), d)| {
            let host = Hostname::resolve_in(&d.host, &vs.meta.namespace, domain, &mut buffer);
            let defined = destination_rules
                .get(host)
                .is_some_and(|dr| dr.spec.subsets.iter().any(|s| s.name == d.subset));
            (!defined).then(|| {
                let host = Hostname::new(host);
                let field = match j {
                    Some(j) => format!("spec.{protocol}[{i}].route[{j}].destination.subset"),
                    None => format!("spec.{protocol}[{i}].mirror.subset"),
                };
                (field, host, d.subset.clone())
            })
        })
        .collect()
}

/// Reports each later VirtualService that shares a host with an earlier one
/// where both reach the same namespaces' sidecars.
fn report_shared_hosts(in_force: &[Vs], domain: &str, problems: &mut Vec<Problem>) {
    let mut first_by_host: BTreeMap<Hostname, &Vs> = BTreeMap::new();
    for vs in in_force {
        let for_mesh = vs.spec.gateways.is_empty() || vs.spec.gateways.iter().any(|g| g == "mesh");
        if !for_mesh {
            continue;
        }
        let hosts: BTreeSet<Hostname> = vs
            .spec
            .hosts
            .iter()
            .map(|h| Hostname::resolve(h, &vs.meta.namespace, domain))
            .collect();
        for host in hosts {
            let Some(first) = first_by_host.get(&host) else {
                first_by_host.insert(host, vs);
                continue;
            };
            if !exports_overlap(first, vs) {
                continue;
            }
            problems.push(Problem {
                severity: Severity::Conflict,
                resource: vs.key(ConfigKind::VirtualService),
                field: Some("spec.hosts".into()),
                message: format!(
                    "host {host} is also routed by VirtualService {}/{}, which takes precedence \
                     in sidecars (older, or first by name); where both are visible, these \
                     rules apply to {host} only on ports it does not route",
                    first.meta.namespace, first.meta.name
                ),
            });
        }
    }
}

/// Whether some namespace sees both VirtualServices.
fn exports_overlap(a: &Config<VirtualService>, b: &Config<VirtualService>) -> bool {
    // `None`: every namespace.
    fn namespaces(vs: &Config<VirtualService>) -> Option<BTreeSet<&str>> {
        let e = &vs.spec.export_to;
        if e.is_empty() || e.iter().any(|x| x == "*") {
            return None;
        }
        Some(
            e.iter()
                .filter(|x| x.as_str() != "~")
                .map(|x| match x.as_str() {
                    "." => vs.meta.namespace.as_str(),
                    other => other,
                })
                .collect(),
        )
    }
    match (namespaces(a), namespaces(b)) {
        (None, None) => true,
        (None, Some(s)) | (Some(s), None) => !s.is_empty(),
        (Some(x), Some(y)) => !x.is_disjoint(&y),
    }
}
