//! DestinationRules of one host merged, the older winning what both set.

use crate::snapshot::testing::snapshot_of;
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
