use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::{Arc, OnceLock};

use serde::Serialize;

use crate::config::{Config, ConfigKey};
use crate::endpoint::Endpoint;
use crate::host::Hostname;
use crate::istio::sidecar::ROOT_NAMESPACE;
use crate::istio::{DestinationRule, Gateway, Sidecar, VirtualService};
use crate::service::Service;

/// One immutable view of the whole mesh. A push reads one snapshot from start
/// to end; a change builds a new one. Shared by `Arc`, never mutated.
#[derive(Debug, Clone, Default, Serialize)]
pub struct MeshSnapshot {
    /// Increases with every snapshot built by one process.
    pub version: u64,
    /// The DNS domain (`cluster.local`) short names are resolved in.
    pub domain: String,
    pub services: BTreeMap<Hostname, Arc<Service>>,
    /// Sorted by address, then port. Shared, so a snapshot rebuilt after a
    /// change keeps the lists of every service the change left alone.
    pub endpoints: BTreeMap<Hostname, Arc<Vec<Endpoint>>>,
    /// In Istio's precedence: oldest first, then by name, then namespace.
    pub virtual_services: Vec<Arc<Config<VirtualService>>>,
    /// Keyed by the resolved host of each rule.
    pub destination_rules: BTreeMap<Hostname, Arc<Config<DestinationRule>>>,
    /// In load order; [`MeshSnapshot::sidecar_for`] picks the one that
    /// applies to a proxy.
    pub sidecars: Vec<Arc<Config<Sidecar>>>,
    /// In load order.
    pub gateways: Vec<Arc<Config<Gateway>>>,
    /// The labels of each Kubernetes pod, keyed as a proxy id names its pod
    /// (`name.namespace`). A proxy of a known pod takes its pod's labels
    /// rather than those it announced, as Istio does, so relabelling the pod
    /// re-scopes its proxy without a restart.
    pub pod_labels: BTreeMap<String, Arc<BTreeMap<String, String>>>,
    /// What building this snapshot set aside or resolved between
    /// resources, sorted. Derived from the resources above, so not part of
    /// what [`MeshSnapshot::changes_since`] compares.
    pub problems: Vec<Problem>,
    /// Derived from `virtual_services` on first use (leave it default): for
    /// each resolved host, the VirtualServices naming it. A snapshot is not
    /// changed once it is in use, so the index never goes stale.
    #[serde(skip)]
    pub vs_by_host: OnceLock<BTreeMap<Hostname, Vec<usize>>>,
    /// Derived from `endpoints` on first use, like `vs_by_host`: for each
    /// endpoint address, where its endpoints sit in `endpoints`.
    #[serde(skip)]
    pub endpoints_by_address: OnceLock<BTreeMap<String, Vec<(Hostname, usize)>>>,
}

/// One finding about a resource made while building a snapshot, from
/// looking at it beside the others (a resource alone is validated where it
/// is read).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Problem {
    pub severity: Severity,
    pub resource: ConfigKey,
    /// The field at fault, as a path into the resource (`spec.hosts`).
    pub field: Option<String>,
    /// What is wrong and what was done about it.
    pub message: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// This version of the resource is not in force; its last good version
    /// (if any) serves instead.
    Rejected,
    /// In force, but another resource takes precedence for what the message
    /// names, as Istio resolves it.
    Conflict,
    /// In force as written, with a part that cannot work until another
    /// resource changes.
    Warning,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Rejected => "rejected",
            Severity::Conflict => "conflict",
            Severity::Warning => "warning",
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let key = &self.resource;
        write!(f, "{} {}/{}: ", key.kind, key.namespace, key.name)?;
        if let Some(field) = &self.field {
            write!(f, "{field}: ")?;
        }
        f.write_str(&self.message)
    }
}

/// What differs between two snapshots, as far as a push needs to know.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SnapshotChange {
    /// Services, routing rules or policies differ: every resource type may
    /// be affected.
    pub config: bool,
    /// Services whose endpoints differ (added, removed or edited).
    pub endpoints: BTreeSet<Hostname>,
    /// Pods (`name.namespace`) whose labels differ, appeared or went: their
    /// proxies' view may change.
    pub pods: BTreeSet<String>,
}

impl SnapshotChange {
    pub fn is_empty(&self) -> bool {
        !self.config && self.endpoints.is_empty() && self.pods.is_empty()
    }
}

/// Equal shared values. A snapshot rebuilt after a change holds the same
/// `Arc` for everything the change left alone, so most comparisons end at
/// the pointer instead of walking the whole value.
fn same<T: PartialEq + ?Sized>(a: &Arc<T>, b: &Arc<T>) -> bool {
    Arc::ptr_eq(a, b) || a == b
}

fn same_lists<T: PartialEq>(a: &[Arc<T>], b: &[Arc<T>]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(a, b)| same(a, b))
}

fn same_maps<K: Eq, T: PartialEq>(a: &BTreeMap<K, Arc<T>>, b: &BTreeMap<K, Arc<T>>) -> bool {
    a.len() == b.len()
        && a.iter()
            .zip(b)
            .all(|((ka, va), (kb, vb))| ka == kb && same(va, vb))
}

/// The keys whose values differ between `new` and `old`, or that only one has.
fn changed_keys<K: Ord + Clone, V: PartialEq>(
    new: &BTreeMap<K, Arc<V>>,
    old: &BTreeMap<K, Arc<V>>,
) -> BTreeSet<K> {
    let mut out: BTreeSet<K> = new
        .iter()
        .filter(|(k, v)| !old.get(k).is_some_and(|o| same(o, v)))
        .map(|(k, _)| k.clone())
        .collect();
    out.extend(old.keys().filter(|k| !new.contains_key(k)).cloned());
    out
}

impl MeshSnapshot {
    /// Compares `self` with the snapshot it replaces. Endpoint changes are
    /// listed per service so a push can send only the affected endpoints.
    pub fn changes_since(&self, old: &MeshSnapshot) -> SnapshotChange {
        let config = self.domain != old.domain
            || !same_maps(&self.services, &old.services)
            || !same_lists(&self.virtual_services, &old.virtual_services)
            || !same_maps(&self.destination_rules, &old.destination_rules)
            || !same_lists(&self.sidecars, &old.sidecars)
            || !same_lists(&self.gateways, &old.gateways);
        SnapshotChange {
            config,
            endpoints: changed_keys(&self.endpoints, &old.endpoints),
            pods: changed_keys(&self.pod_labels, &old.pod_labels),
        }
    }

    pub fn service(&self, host: &Hostname) -> Option<&Arc<Service>> {
        self.services.get(host)
    }

    pub fn endpoints(&self, host: &Hostname) -> &[Endpoint] {
        self.endpoints
            .get(host)
            .map(|eps| eps.as_slice())
            .unwrap_or_default()
    }

    /// The endpoints at `address`, of every service: what the workload at
    /// that address serves.
    pub fn endpoints_at<'a>(&'a self, address: &str) -> impl Iterator<Item = &'a Endpoint> + 'a {
        let index = self.endpoints_by_address.get_or_init(|| {
            let mut index: BTreeMap<String, Vec<(Hostname, usize)>> = BTreeMap::new();
            for (host, eps) in &self.endpoints {
                for (i, ep) in eps.iter().enumerate() {
                    index
                        .entry(ep.address.clone())
                        .or_default()
                        .push((host.clone(), i));
                }
            }
            index
        });
        index
            .get(address)
            .map(Vec::as_slice)
            .unwrap_or_default()
            .iter()
            .filter_map(|(host, i)| self.endpoints.get(host)?.get(*i))
    }

    pub fn destination_rule(&self, host: &Hostname) -> Option<&Arc<Config<DestinationRule>>> {
        self.destination_rules.get(host)
    }

    /// The Sidecar resource that scopes a proxy of `namespace` with
    /// `labels`, as Istio picks it: one in the proxy's namespace whose
    /// selector matches its labels, else the namespace's Sidecar without a
    /// selector, else the root namespace's. Ties go to the first loaded.
    pub fn sidecar_for(
        &self,
        namespace: &str,
        labels: &BTreeMap<String, String>,
    ) -> Option<&Arc<Config<Sidecar>>> {
        let in_namespace = |ns: &str, selected: bool| {
            self.sidecars.iter().find(move |s| {
                s.meta.namespace == ns
                    && s.spec.workload_selector.is_some() == selected
                    && s.spec.selects(labels)
            })
        };
        in_namespace(namespace, true)
            .or_else(|| in_namespace(namespace, false))
            .or_else(|| in_namespace(ROOT_NAMESPACE, false))
    }

    /// VirtualServices (for sidecars: those without `gateways`, or bound to
    /// `mesh`) whose hosts include `host` and that are exported to
    /// `proxy_namespace`, in the snapshot's order: Istio's precedence.
    pub fn virtual_services_for<'a>(
        &'a self,
        host: &'a Hostname,
        proxy_namespace: &'a str,
    ) -> impl Iterator<Item = &'a Arc<Config<VirtualService>>> + 'a {
        let index = self.vs_by_host.get_or_init(|| {
            let mut index: BTreeMap<Hostname, Vec<usize>> = BTreeMap::new();
            for (i, vs) in self.virtual_services.iter().enumerate() {
                let hosts: BTreeSet<Hostname> = vs
                    .spec
                    .hosts
                    .iter()
                    .map(|h| Hostname::resolve(h, &vs.meta.namespace, &self.domain))
                    .collect();
                for h in hosts {
                    index.entry(h).or_default().push(i);
                }
            }
            index
        });
        index
            .get(host)
            .map(Vec::as_slice)
            .unwrap_or_default()
            .iter()
            .map(|i| &self.virtual_services[*i])
            .filter(move |vs| {
                let applies_to_mesh =
                    vs.spec.gateways.is_empty() || vs.spec.gateways.iter().any(|g| g == "mesh");
                applies_to_mesh
                    && exported_to(&vs.spec.export_to, &vs.meta.namespace, proxy_namespace)
            })
    }
}

/// Istio's `exportTo`: empty or `*` is every namespace, `.` the config's own,
/// `~` none, anything else a namespace by name.
pub fn exported_to(export_to: &[String], own_namespace: &str, namespace: &str) -> bool {
    export_to.is_empty()
        || export_to.iter().any(|e| match e.as_str() {
            "*" => true,
            "." => own_namespace == namespace,
            "~" => false,
            other => other == namespace,
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::endpoint::Endpoint;

    fn endpoint(addr: &str) -> Endpoint {
        Endpoint {
            service: Hostname::new("a.default.svc.cluster.local"),
            service_port_name: "http".into(),
            address: addr.into(),
            port: 80,
            labels: Default::default(),
            locality: Default::default(),
            health: Default::default(),
            service_account: String::new(),
            weight: 0,
        }
    }

    #[test]
    fn endpoint_only_changes_are_listed_per_service() {
        let a = Hostname::new("a.default.svc.cluster.local");
        let b = Hostname::new("b.default.svc.cluster.local");
        let mut old = MeshSnapshot::default();
        old.endpoints
            .insert(a.clone(), Arc::new(vec![endpoint("10.0.0.1")]));
        old.endpoints
            .insert(b.clone(), Arc::new(vec![endpoint("10.0.0.2")]));

        let mut new = old.clone();
        assert!(new.changes_since(&old).is_empty());

        // An equal list that is not the same `Arc` is no change.
        new.endpoints
            .insert(b.clone(), Arc::new(vec![endpoint("10.0.0.2")]));
        assert!(new.changes_since(&old).is_empty());

        new.endpoints
            .insert(a.clone(), Arc::new(vec![endpoint("10.0.0.9")]));
        let change = new.changes_since(&old);
        assert!(!change.config);
        assert_eq!(change.endpoints, BTreeSet::from([a.clone()]));

        new.endpoints.remove(&b);
        assert_eq!(new.changes_since(&old).endpoints, BTreeSet::from([a, b]));

        new.domain = "other.local".into();
        assert!(new.changes_since(&old).config);
    }

    #[test]
    fn pod_label_changes_are_listed_per_pod_and_are_not_config() {
        let labels = |v: &str| Arc::new(BTreeMap::from([("version".to_string(), v.to_string())]));
        let mut old = MeshSnapshot::default();
        old.pod_labels.insert("a.shop".into(), labels("v1"));
        old.pod_labels.insert("b.shop".into(), labels("v1"));
        let mut new = old.clone();
        new.pod_labels.insert("a.shop".into(), labels("v2"));
        new.pod_labels.remove("b.shop");
        new.pod_labels.insert("c.shop".into(), labels("v1"));
        let change = new.changes_since(&old);
        assert!(!change.config && change.endpoints.is_empty());
        assert_eq!(
            change.pods,
            BTreeSet::from(["a.shop".to_string(), "b.shop".into(), "c.shop".into()])
        );
        assert!(!change.is_empty());
    }

    #[test]
    fn export_to_follows_istio() {
        let to = |v: &[&str]| v.iter().map(ToString::to_string).collect::<Vec<_>>();
        assert!(exported_to(&[], "a", "b"));
        assert!(exported_to(&to(&["*"]), "a", "b"));
        assert!(exported_to(&to(&["."]), "a", "a"));
        assert!(!exported_to(&to(&["."]), "a", "b"));
        assert!(!exported_to(&to(&["~"]), "a", "a"));
        assert!(exported_to(&to(&[".", "b"]), "a", "b"));
        assert!(!exported_to(&to(&["c"]), "a", "b"));
    }

    #[test]
    fn sidecar_selection_follows_istio() {
        let sidecar = |ns: &str, name: &str, selector: Option<(&str, &str)>| {
            Arc::new(Config {
                meta: crate::config::ConfigMeta {
                    name: name.into(),
                    namespace: ns.into(),
                    ..Default::default()
                },
                spec: Sidecar {
                    workload_selector: selector.map(|(k, v)| crate::istio::WorkloadSelector {
                        labels: BTreeMap::from([(k.to_string(), v.to_string())]),
                    }),
                    ..Default::default()
                },
            })
        };
        let snap = MeshSnapshot {
            sidecars: vec![
                sidecar("shop", "default", None),
                sidecar("shop", "for-api", Some(("app", "api"))),
                sidecar(ROOT_NAMESPACE, "mesh", None),
                sidecar(ROOT_NAMESPACE, "picky", Some(("app", "web"))),
            ],
            ..Default::default()
        };
        let labels = |app: &str| BTreeMap::from([("app".to_string(), app.to_string())]);
        let name = |s: Option<&Arc<Config<Sidecar>>>| s.map(|s| s.meta.name.clone());
        assert_eq!(
            name(snap.sidecar_for("shop", &labels("api"))),
            Some("for-api".into())
        );
        assert_eq!(
            name(snap.sidecar_for("shop", &labels("web"))),
            Some("default".into())
        );
        assert_eq!(
            name(snap.sidecar_for("web", &labels("web"))),
            Some("mesh".into()),
            "a root-namespace selector only picks workloads of that namespace"
        );
        let no_root = MeshSnapshot {
            sidecars: snap.sidecars[..2].to_vec(),
            ..Default::default()
        };
        assert_eq!(name(no_root.sidecar_for("web", &labels("web"))), None);
    }
}
