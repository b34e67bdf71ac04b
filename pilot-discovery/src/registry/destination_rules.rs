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

#[cfg(test)]
mod tests {
    use crate::registry::tests::snapshot_of;
    use mesh_model::Hostname;

    fn rule(name: &str, ns: &str, created: &str, body: &str) -> String {
        format!(
            "apiVersion: networking.istio.io/v1\nkind: DestinationRule\n\
             metadata: {{name: {name}, namespace: {ns}, creationTimestamp: \"{created}\"}}\n\
             spec:\n  host: reviews.default.svc.cluster.local\n{body}---\n"
        )
    }

    #[test]
    fn rules_of_one_namespace_merge_and_the_older_wins_what_both_set() {
        let snap = snapshot_of(&format!(
            "{}{}{}",
            rule(
                "a-newer",
                "default",
                "2024-06-02T00:00:00Z",
                "  trafficPolicy: {loadBalancer: {simple: RANDOM}}\n  subsets: [{name: v1, labels: {v: b}}, {name: v2, labels: {v: '2'}}]\n"
            ),
            rule(
                "z-older",
                "default",
                "2024-06-01T00:00:00Z",
                "  subsets: [{name: v1, labels: {v: '1'}}]\n"
            ),
            rule(
                "elsewhere",
                "other",
                "2024-06-03T00:00:00Z",
                "  subsets: [{name: v3, labels: {v: '3'}}]\n"
            ),
        ));
        let dr = snap
            .destination_rule(&Hostname::new("reviews.default.svc.cluster.local"))
            .expect("rule");
        assert_eq!(dr.meta.name, "z-older");
        let subsets: Vec<(&str, &str)> = dr
            .spec
            .subsets
            .iter()
            .map(|s| (s.name.as_str(), s.labels["v"].as_str()))
            .collect();
        assert_eq!(subsets, [("v1", "1"), ("v2", "2")]);
        assert!(
            dr.spec.traffic_policy.is_some(),
            "filled in from the newer rule"
        );
        let reported: Vec<(&str, Option<&str>)> = snap
            .problems
            .iter()
            .map(|p| (p.resource.name.as_str(), p.field.as_deref()))
            .collect();
        assert_eq!(
            reported,
            [
                ("a-newer", Some("spec.subsets[0].name")),
                ("elsewhere", Some("spec.host"))
            ]
        );
    }
}
