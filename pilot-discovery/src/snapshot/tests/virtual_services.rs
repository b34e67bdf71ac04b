//! VirtualServices in precedence, their conflicts, and rejected edits.

use crate::snapshot::build_snapshot;
use crate::snapshot::testing::{resources_of, snapshot_of};
use mesh_model::{MeshSnapshot, Severity};

const DR: &str = "apiVersion: networking.istio.io/v1\nkind: DestinationRule\n\
        metadata: {name: r}\nspec:\n  host: reviews\n  subsets: [{name: v1, labels: {version: v1}}]\n---\n";

fn vs(name: &str, created: &str, export: &str, subset: &str) -> String {
    format!(
        "apiVersion: networking.istio.io/v1\nkind: VirtualService\n\
             metadata: {{name: {name}, creationTimestamp: \"{created}\"}}\n\
             spec:\n  hosts: [reviews]\n  exportTo: {export}\n\
             \x20 http: [{{route: [{{destination: {{host: reviews, subset: {subset}}}}}]}}]\n---\n"
    )
}

fn rebuild(previous: &MeshSnapshot, yaml: &str) -> MeshSnapshot {
    let map = resources_of(yaml);
    build_snapshot(
        previous.version + 1,
        "cluster.local",
        &[&map],
        Some(previous),
    )
}

fn names(snap: &MeshSnapshot) -> Vec<&str> {
    snap.virtual_services
        .iter()
        .map(|v| v.meta.name.as_str())
        .collect()
}

#[test]
fn the_older_virtual_service_comes_first_and_a_shared_host_is_reported() {
    let snap = snapshot_of(&format!(
        "{DR}{}{}{}",
        vs("a-new", "2024-06-02T00:00:00Z", "['*']", "v1"),
        vs("b-old", "2024-06-01T00:00:00Z", "['*']", "v1"),
        vs("c-private", "2024-06-03T00:00:00Z", "[other]", "v1"),
    ));
    assert_eq!(names(&snap), ["b-old", "a-new", "c-private"]);
    let conflicts: Vec<_> = snap
        .problems
        .iter()
        .map(|p| (p.severity, p.resource.name.as_str()))
        .collect();
    assert_eq!(
        conflicts,
        [
            (Severity::Conflict, "a-new"),
            (Severity::Conflict, "c-private")
        ],
        "c-private reaches namespace other, which b-old reaches too"
    );
    assert!(
        snap.problems[0].message.contains("default/b-old"),
        "{}",
        snap.problems[0]
    );
}

#[test]
fn virtual_services_seen_by_disjoint_namespaces_do_not_conflict() {
    let snap = snapshot_of(&format!(
        "{DR}{}{}",
        vs("a", "2024-06-01T00:00:00Z", "['.']", "v1"),
        vs("b", "2024-06-02T00:00:00Z", "[other]", "v1"),
    ));
    assert!(snap.problems.is_empty(), "{:?}", snap.problems);
}

#[test]
fn a_dangling_subset_rejects_the_edit_and_keeps_the_last_good_version() {
    let good = snapshot_of(&format!(
        "{DR}{}",
        vs("a", "2024-06-01T00:00:00Z", "[]", "v1")
    ));
    assert!(good.problems.is_empty(), "{:?}", good.problems);

    let edited = rebuild(
        &good,
        &format!("{DR}{}", vs("a", "2024-06-01T00:00:00Z", "[]", "v9")),
    );
    assert_eq!(
        edited.virtual_services, good.virtual_services,
        "last good version serves"
    );
    assert_eq!(edited.problems.len(), 1);
    let p = &edited.problems[0];
    assert_eq!(p.severity, Severity::Rejected);
    assert_eq!(
        p.field.as_deref(),
        Some("spec.http[0].route[0].destination.subset")
    );
    assert!(
        p.message.contains("\"v9\"") && p.message.contains("last good"),
        "{p}"
    );

    // A second bad edit still finds the good version, one build back.
    let again = rebuild(
        &edited,
        &format!("{DR}{}", vs("a", "2024-06-01T00:00:00Z", "[]", "v8")),
    );
    assert_eq!(again.virtual_services, good.virtual_services);

    // With no good version, a new VirtualService is left out.
    let fresh = snapshot_of(&vs("new", "2024-06-01T00:00:00Z", "[]", "v1"));
    assert!(fresh.virtual_services.is_empty());
    assert!(
        fresh.problems[0].message.contains("no good version"),
        "{}",
        fresh.problems[0]
    );
}

#[test]
fn a_subset_removed_from_its_rule_leaves_the_unchanged_virtual_service_in_force() {
    let good = snapshot_of(&format!(
        "{DR}{}",
        vs("a", "2024-06-01T00:00:00Z", "[]", "v1")
    ));
    let no_rule = rebuild(&good, &vs("a", "2024-06-01T00:00:00Z", "[]", "v1"));
    assert_eq!(no_rule.virtual_services, good.virtual_services);
    assert_eq!(no_rule.problems.len(), 1);
    assert_eq!(no_rule.problems[0].severity, Severity::Warning);
}
