//! DestinationRules for one host, combined as Istio combines them.
//!
//! Rules come oldest first. Rules of one namespace for one host merge: the
//! first traffic policy stands (a later one fills in only where the first
//! has none), and later subsets join unless their name is taken. A rule of
//! another namespace for the same host is set aside whole: Istio would pick
//! one per proxy namespace, and this model holds one rule per host. Each
//! case is reported.

use std::collections::BTreeMap;
use std::sync::Arc;

use mesh_model::istio::DestinationRule;
use mesh_model::{Config, ConfigKind, Hostname, Problem, Severity};

type Dr = Arc<Config<DestinationRule>>;

/// One rule per resolved host.
pub fn by_host(
    mut rules: Vec<Dr>,
    domain: &str,
    problems: &mut Vec<Problem>,
) -> BTreeMap<Hostname, Dr> {
    rules.sort_by(|a, b| a.meta.precedence().cmp(&b.meta.precedence()));
    let mut out: BTreeMap<Hostname, Dr> = BTreeMap::new();
    for dr in rules {
        let host = Hostname::resolve(&dr.spec.host, &dr.meta.namespace, domain);
        let Some(first) = out.get_mut(&host) else {
            out.insert(host, dr);
            continue;
        };
        let conflict = |field: &str, message: String| Problem {
            severity: Severity::Conflict,
            resource: dr.key(ConfigKind::DestinationRule),
            field: Some(field.into()),
            message,
        };
        let first_name = format!("{}/{}", first.meta.namespace, first.meta.name);
        if first.meta.namespace != dr.meta.namespace {
            problems.push(conflict(
                "spec.host",
                format!(
                    "host {host} already has DestinationRule {first_name} from another \
                     namespace, which takes precedence (older, or first by name); this rule \
                     is ignored"
                ),
            ));
            continue;
        }
        let mut merged = (**first).clone();
        if dr.spec.traffic_policy.is_some() {
            if merged.spec.traffic_policy.is_none() {
                merged.spec.traffic_policy = dr.spec.traffic_policy.clone();
            } else {
                problems.push(conflict(
                    "spec.trafficPolicy",
                    format!(
                        "host {host} already has a traffic policy from DestinationRule \
                         {first_name}, which takes precedence; this one is ignored"
                    ),
                ));
            }
        }
        for (i, subset) in dr.spec.subsets.iter().enumerate() {
            if merged.spec.subsets.iter().any(|s| s.name == subset.name) {
                problems.push(conflict(
                    &format!("spec.subsets[{i}].name"),
                    format!(
                        "subset {:?} of host {host} is already defined by DestinationRule \
                         {first_name}, whose definition takes precedence",
                        subset.name
                    ),
                ));
            } else {
                merged.spec.subsets.push(subset.clone());
            }
        }
        *first = Arc::new(merged);
    }
    out
}
