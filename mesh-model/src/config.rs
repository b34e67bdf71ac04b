use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

/// Declares [`ConfigKind`] with the list of every kind, so the kind table
/// (`kinds.rs`) can be checked against it when the crate compiles.
macro_rules! config_kinds {
    ($($(#[doc = $doc:literal])* $kind:ident,)+) => {
        /// The kinds of configuration the model understands, each with its
        /// row in [`crate::kinds::KINDS`], in this order.
        ///
        /// `Service`, `EndpointSlice`, `Endpoints`, `Pod`, `Node` and
        /// `Namespace` name Kubernetes objects that platform adapters convert
        /// into model services and endpoints, or select by; the model itself
        /// holds no Kubernetes types.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        pub enum ConfigKind {
            $($(#[doc = $doc])* $kind,)+
        }

        impl ConfigKind {
            /// Every kind, in declaration order.
            pub const ALL: &'static [ConfigKind] = &[$(ConfigKind::$kind,)+];

            pub fn as_str(self) -> &'static str {
                match self {
                    $(ConfigKind::$kind => stringify!($kind),)+
                }
            }
        }
    };
}

config_kinds! {
    VirtualService,
    DestinationRule,
    ServiceEntry,
    WorkloadEntry,
    Sidecar,
    Gateway,
    Service,
    EndpointSlice,
    /// core/v1 Endpoints, for API servers that serve no `discovery.k8s.io/v1`.
    Endpoints,
    Pod,
    Node,
    Namespace,
}

impl fmt::Display for ConfigKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Identity of one configuration resource: `Kind/namespace/name`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ConfigKey {
    pub kind: ConfigKind,
    pub namespace: String,
    pub name: String,
}

impl fmt::Display for ConfigKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}/{}", self.kind, self.namespace, self.name)
    }
}

/// The part of Kubernetes-style object metadata the model uses. Other
/// metadata fields (uid, resourceVersion, managedFields, ...) are ignored.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConfigMeta {
    pub name: String,
    #[serde(default)]
    pub namespace: String,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    /// As the API server writes it: RFC 3339 in UTC (`...Z`). Absent for
    /// resources read from files.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub creation_timestamp: Option<String>,
}

impl ConfigMeta {
    /// Istio's order of precedence between resources that claim the same
    /// thing: the oldest first, then by name, then by namespace. Kubernetes
    /// writes creation times in one UTC format, so they compare as text; a
    /// resource without one counts as the oldest, as a zero time does in
    /// Istio.
    pub fn precedence(&self) -> (Option<&str>, &str, &str) {
        (
            self.creation_timestamp.as_deref(),
            &self.name,
            &self.namespace,
        )
    }
}

/// A typed configuration resource: metadata plus the kind's spec.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Config<T> {
    pub meta: ConfigMeta,
    pub spec: T,
}

impl<T> Config<T> {
    pub fn key(&self, kind: ConfigKind) -> ConfigKey {
        ConfigKey {
            kind,
            namespace: self.meta.namespace.clone(),
            name: self.meta.name.clone(),
        }
    }
}
