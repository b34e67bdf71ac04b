//! Who this proxy is, from the environment Kubernetes (or the operator) sets.

use std::collections::BTreeMap;
use std::net::IpAddr;

use serde_json::{Map, Value};

/// Metadata variables: `ISTIO_META_FOO=bar` becomes node metadata `FOO: "bar"`.
pub const META_PREFIX: &str = "ISTIO_META_";
/// JSON metadata: `ISTIO_METAJSON_LABELS={"app":"x"}` becomes `LABELS: {"app": "x"}`.
pub const METAJSON_PREFIX: &str = "ISTIO_METAJSON_";

#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error("INSTANCE_IP {0:?} is not an IP address")]
    InstanceIp(String),
    #[error("{name} {value:?} must not contain '~' or be empty: it is part of the node id")]
    BadPart { name: &'static str, value: String },
    #[error("{name} is not valid JSON: {source}")]
    MetaJson {
        name: String,
        #[source]
        source: serde_json::Error,
    },
}

/// The proxy's identity and node metadata.
#[derive(Debug, Clone, PartialEq)]
pub struct Identity {
    pub node_type: NodeKind,
    pub pod_name: String,
    pub namespace: String,
    pub instance_ips: Vec<IpAddr>,
    pub dns_domain: String,
    pub metadata: Map<String, Value>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum NodeKind {
    Sidecar,
    Router,
}

impl NodeKind {
    fn as_str(self) -> &'static str {
        match self {
            NodeKind::Sidecar => "sidecar",
            NodeKind::Router => "router",
        }
    }
}

impl Identity {
    /// Reads `POD_NAME`, `POD_NAMESPACE`, `INSTANCE_IP` (a comma-separated
    /// list is accepted) and every `ISTIO_META_*` variable from `env`.
    pub fn from_env(
        node_type: NodeKind,
        domain: &str,
        env: &BTreeMap<String, String>,
    ) -> Result<Identity, IdentityError> {
        let get = |k: &str| env.get(k).filter(|v| !v.is_empty()).cloned();
        let pod_name = get("POD_NAME")
            .or_else(|| get("HOSTNAME"))
            .unwrap_or_else(|| "localhost".to_string());
        let namespace = get("POD_NAMESPACE").unwrap_or_else(|| "default".to_string());
        for (name, value) in [("POD_NAME", &pod_name), ("POD_NAMESPACE", &namespace)] {
            if value.contains('~') || value.contains('.') && name == "POD_NAMESPACE" {
                return Err(IdentityError::BadPart {
                    name,
                    value: value.clone(),
                });
            }
        }
        let ips_raw = get("INSTANCE_IP").unwrap_or_else(|| "127.0.0.1".to_string());
        let instance_ips = ips_raw
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| {
                s.parse::<IpAddr>()
                    .map_err(|_| IdentityError::InstanceIp(s.to_string()))
            })
            .collect::<Result<Vec<_>, _>>()?;
        if instance_ips.is_empty() {
            return Err(IdentityError::InstanceIp(ips_raw));
        }

        let mut metadata = Map::new();
        for (k, v) in env {
            if let Some(key) = k.strip_prefix(META_PREFIX) {
                if !key.is_empty() {
                    metadata.insert(key.to_string(), Value::String(v.clone()));
                }
            }
        }
        // JSON values win over string ones of the same name: they are the
        // more specific way of saying it.
        for (k, v) in env {
            if let Some(key) = k.strip_prefix(METAJSON_PREFIX) {
                if !key.is_empty() {
                    let value =
                        serde_json::from_str(v).map_err(|source| IdentityError::MetaJson {
                            name: k.clone(),
                            source,
                        })?;
                    metadata.insert(key.to_string(), value);
                }
            }
        }
        if let Some(sa) = get("SERVICE_ACCOUNT") {
            metadata.insert("SERVICE_ACCOUNT".into(), Value::String(sa));
        }
        let ips: Vec<String> = instance_ips.iter().map(ToString::to_string).collect();
        metadata.insert("NAMESPACE".into(), Value::String(namespace.clone()));
        metadata.insert("NAME".into(), Value::String(pod_name.clone()));
        metadata.insert("INSTANCE_IPS".into(), Value::String(ips.join(",")));
        Ok(Identity {
            node_type,
            dns_domain: format!("{namespace}.svc.{domain}"),
            pod_name,
            namespace,
            instance_ips,
            metadata,
        })
    }

    /// Istio's node id: `sidecar~10.1.2.3~pod.ns~ns.svc.cluster.local`.
    pub fn node_id(&self) -> String {
        let ip = self
            .instance_ips
            .first()
            .map(ToString::to_string)
            .unwrap_or_default();
        format!(
            "{}~{}~{}.{}~{}",
            self.node_type.as_str(),
            ip,
            self.pod_name,
            self.namespace,
            self.dns_domain
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn node_id_and_metadata_from_env() {
        let id = Identity::from_env(
            NodeKind::Sidecar,
            "cluster.local",
            &env(&[
                ("POD_NAME", "reviews-v1-abc"),
                ("POD_NAMESPACE", "shop"),
                ("INSTANCE_IP", "10.1.2.3"),
                ("ISTIO_META_INTERCEPTION_MODE", "NONE"),
                ("ISTIO_META_", "ignored"),
                ("UNRELATED", "x"),
            ]),
        )
        .expect("valid");
        assert_eq!(
            id.node_id(),
            "sidecar~10.1.2.3~reviews-v1-abc.shop~shop.svc.cluster.local"
        );
        assert_eq!(id.metadata["INTERCEPTION_MODE"], "NONE");
        assert_eq!(id.metadata["NAMESPACE"], "shop");
        assert_eq!(id.metadata["INSTANCE_IPS"], "10.1.2.3");
        assert!(!id.metadata.contains_key("UNRELATED"));
        assert!(!id.metadata.contains_key(""));
    }

    #[test]
    fn json_metadata_labels_and_service_account() {
        let id = Identity::from_env(
            NodeKind::Sidecar,
            "cluster.local",
            &env(&[
                (
                    "ISTIO_METAJSON_LABELS",
                    r#"{"app":"reviews","version":"v1"}"#,
                ),
                ("ISTIO_META_LABELS", "overridden"),
                ("SERVICE_ACCOUNT", "bookinfo-reviews"),
                ("INSTANCE_IP", "10.1.2.3,fd00::3"),
            ]),
        )
        .expect("valid");
        assert_eq!(id.metadata["LABELS"]["version"], "v1");
        assert_eq!(id.metadata["SERVICE_ACCOUNT"], "bookinfo-reviews");
        assert_eq!(id.metadata["INSTANCE_IPS"], "10.1.2.3,fd00::3");
        let e = Identity::from_env(
            NodeKind::Sidecar,
            "cluster.local",
            &env(&[("ISTIO_METAJSON_LABELS", "{app: x}")]),
        )
        .expect_err("bad json");
        assert!(
            e.to_string()
                .starts_with("ISTIO_METAJSON_LABELS is not valid JSON"),
            "{e}"
        );
    }

    #[test]
    fn defaults_and_errors() {
        let id = Identity::from_env(
            NodeKind::Router,
            "cluster.local",
            &env(&[("HOSTNAME", "gw")]),
        )
        .expect("defaults");
        assert_eq!(
            id.node_id(),
            "router~127.0.0.1~gw.default~default.svc.cluster.local"
        );
        assert!(matches!(
            Identity::from_env(
                NodeKind::Sidecar,
                "cluster.local",
                &env(&[("INSTANCE_IP", "nope")])
            ),
            Err(IdentityError::InstanceIp(_))
        ));
        assert!(matches!(
            Identity::from_env(
                NodeKind::Sidecar,
                "cluster.local",
                &env(&[("POD_NAME", "a~b")])
            ),
            Err(IdentityError::BadPart { .. })
        ));
    }
}
