//! What one push must send, and how pushes waiting for the same proxy merge.

use std::collections::BTreeSet;

use mesh_model::{Hostname, SnapshotChange};

/// Which resources a push touches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PushScope {
    /// Every resource type, every resource.
    Full,
    /// Only the endpoints (EDS) of these services: incremental EDS.
    Endpoints(BTreeSet<Hostname>),
    /// Everything to the proxies of these pods (`name.namespace`), whose
    /// labels changed and with them what selects them; to every other
    /// proxy, the endpoints of these services only.
    Pods {
        pods: BTreeSet<String>,
        endpoints: BTreeSet<Hostname>,
    },
}

impl PushScope {
    /// The scope a snapshot change needs; `None` when nothing changed.
    pub fn for_change(change: SnapshotChange) -> Option<PushScope> {
        if change.config {
            Some(PushScope::Full)
        } else if !change.pods.is_empty() {
            Some(PushScope::Pods {
                pods: change.pods,
                endpoints: change.endpoints,
            })
        } else if change.endpoints.is_empty() {
            None
        } else {
            Some(PushScope::Endpoints(change.endpoints))
        }
    }

    pub fn is_full(&self) -> bool {
        matches!(self, PushScope::Full)
    }

    /// Whether the proxy of `pod` (its proxy id's `name.namespace`) gets
    /// every resource type from this push.
    pub fn is_full_for(&self, pod: &str) -> bool {
        match self {
            PushScope::Full => true,
            PushScope::Endpoints(_) => false,
            PushScope::Pods { pods, .. } => pods.contains(pod),
        }
    }

    /// The services whose endpoints a partial push sends; `None` for a
    /// full push.
    pub fn endpoints(&self) -> Option<&BTreeSet<Hostname>> {
        match self {
            PushScope::Full => None,
            PushScope::Endpoints(hosts)
            | PushScope::Pods {
                endpoints: hosts, ..
            } => Some(hosts),
        }
    }

    /// Two pending pushes become one that covers both.
    pub fn merge(self, other: PushScope) -> PushScope {
        match (self, other) {
            (PushScope::Full, _) | (_, PushScope::Full) => PushScope::Full,
            (PushScope::Endpoints(mut a), PushScope::Endpoints(b)) => {
                a.extend(b);
                PushScope::Endpoints(a)
            }
            (a, b) => {
                let (mut pods, mut endpoints) = a.into_partial();
                let (more_pods, more_endpoints) = b.into_partial();
                pods.extend(more_pods);
                endpoints.extend(more_endpoints);
                PushScope::Pods { pods, endpoints }
            }
        }
    }

    /// The pods and services of a partial scope (both empty for `Full`).
    fn into_partial(self) -> (BTreeSet<String>, BTreeSet<Hostname>) {
        match self {
            PushScope::Full => Default::default(),
            PushScope::Endpoints(hosts) => (BTreeSet::new(), hosts),
            PushScope::Pods { pods, endpoints } => (pods, endpoints),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hosts(names: &[&str]) -> BTreeSet<Hostname> {
        names.iter().map(|n| Hostname::new(*n)).collect()
    }

    #[test]
    fn scopes_merge_to_the_union() {
        let a = PushScope::Endpoints(hosts(&["a"]));
        let b = PushScope::Endpoints(hosts(&["b"]));
        assert_eq!(a.clone().merge(b), PushScope::Endpoints(hosts(&["a", "b"])));
        assert_eq!(a.clone().merge(PushScope::Full), PushScope::Full);
        assert_eq!(PushScope::Full.merge(a), PushScope::Full);
    }

    #[test]
    fn relabelled_pods_get_everything_and_the_rest_endpoints_only() {
        let pods = |p: &[&str]| p.iter().map(|s| s.to_string()).collect::<BTreeSet<_>>();
        let relabel = PushScope::for_change(SnapshotChange {
            config: false,
            endpoints: hosts(&["a"]),
            pods: pods(&["web-1.shop"]),
        })
        .expect("a change");
        assert!(relabel.is_full_for("web-1.shop"));
        assert!(!relabel.is_full_for("web-2.shop"));
        assert_eq!(relabel.endpoints(), Some(&hosts(&["a"])));
        assert!(!relabel.is_full());

        let merged = PushScope::Endpoints(hosts(&["b"])).merge(relabel.clone());
        assert_eq!(
            merged,
            PushScope::Pods {
                pods: pods(&["web-1.shop"]),
                endpoints: hosts(&["a", "b"])
            }
        );
        assert_eq!(relabel.merge(PushScope::Full), PushScope::Full);
        assert!(PushScope::Full.is_full_for("any.pod"));
        assert_eq!(PushScope::Full.endpoints(), None);
    }

    #[test]
    fn scope_follows_the_change() {
        assert_eq!(PushScope::for_change(SnapshotChange::default()), None);
        let eds = SnapshotChange {
            config: false,
            endpoints: hosts(&["a"]),
            pods: BTreeSet::new(),
        };
        assert_eq!(
            PushScope::for_change(eds),
            Some(PushScope::Endpoints(hosts(&["a"])))
        );
        let full = SnapshotChange {
            config: true,
            endpoints: hosts(&["a"]),
            pods: BTreeSet::new(),
        };
        assert_eq!(PushScope::for_change(full), Some(PushScope::Full));
    }
}
