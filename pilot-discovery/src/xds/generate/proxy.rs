//! The connected proxy, as the generators see it.

use std::collections::BTreeMap;

use mesh_model::proxy::{InterceptionMode, ProxyMetadata};
use mesh_model::{MeshSnapshot, ProxyId, ProxyIdError};
use xds_proto::pb::envoy::config::core::v3::Node;
use xds_proto::protobuf::{value::Kind, Struct};

#[derive(Debug, Clone)]
pub struct Proxy {
    pub node_id: String,
    pub id: ProxyId,
    pub metadata: ProxyMetadata,
}

impl Proxy {
    pub fn from_node(node: &Node) -> Result<Proxy, ProxyIdError> {
        let id: ProxyId = node.id.parse()?;
        let metadata = node
            .metadata
            .as_ref()
            .map(parse_metadata)
            .unwrap_or_default();
        Ok(Proxy {
            node_id: node.id.clone(),
            id,
            metadata,
        })
    }

    /// The namespace the workload runs in: node metadata first, then the id.
    pub fn namespace(&self) -> &str {
        self.metadata
            .namespace
            .as_deref()
            .unwrap_or_else(|| self.id.namespace())
    }

    /// The workload's labels: its pod's when the registry knows the pod, so
    /// a relabelled pod re-scopes its proxy at once (as in Istio), else the
    /// labels the proxy announced in its metadata.
    pub fn labels<'a>(&'a self, snap: &'a MeshSnapshot) -> &'a BTreeMap<String, String> {
        snap.pod_labels
            .get(&self.id.id)
            .map_or(&self.metadata.labels, AsRef::as_ref)
    }

    /// Listeners bind service ports on loopback instead of relying on iptables.
    pub fn is_local_mode(&self) -> bool {
        self.metadata.interception_mode == InterceptionMode::None
    }
}

fn string_fields(s: &Struct) -> BTreeMap<String, String> {
    s.fields
        .iter()
        .filter_map(|(k, v)| match &v.kind {
            Some(Kind::StringValue(s)) => Some((k.clone(), s.clone())),
            _ => None,
        })
        .collect()
}

fn parse_metadata(meta: &Struct) -> ProxyMetadata {
    let raw = string_fields(meta);
    let interception_mode = raw
        .get("INTERCEPTION_MODE")
        .and_then(|m| InterceptionMode::parse(m))
        .unwrap_or_default();
    let labels = match meta.fields.get("LABELS").and_then(|v| v.kind.as_ref()) {
        Some(Kind::StructValue(s)) => string_fields(s),
        _ => BTreeMap::new(),
    };
    ProxyMetadata {
        interception_mode,
        namespace: raw.get("NAMESPACE").filter(|n| !n.is_empty()).cloned(),
        labels,
        raw,
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use xds_proto::protobuf::Value;

    /// A local-mode sidecar at `ip` in namespace `ns`.
    pub fn local_proxy(ip: &str, ns: &str) -> Proxy {
        Proxy::from_node(&local_node(&format!(
            "sidecar~{ip}~app.{ns}~{ns}.svc.cluster.local"
        )))
        .expect("valid node")
    }

    pub fn local_node(id: &str) -> Node {
        let mut fields = std::collections::HashMap::new();
        fields.insert(
            "INTERCEPTION_MODE".to_string(),
            Value {
                kind: Some(Kind::StringValue("NONE".into())),
            },
        );
        Node {
            id: id.into(),
            metadata: Some(Struct { fields }),
            ..Default::default()
        }
    }

    #[test]
    fn a_known_pods_labels_replace_the_announced_ones() {
        let mut node = local_node("sidecar~10.0.0.1~web-1.shop~shop.svc.cluster.local");
        let announced = Struct {
            fields: [(
                "version".to_string(),
                Value {
                    kind: Some(Kind::StringValue("v1".into())),
                },
            )]
            .into(),
        };
        node.metadata.as_mut().expect("metadata").fields.insert(
            "LABELS".into(),
            Value {
                kind: Some(Kind::StructValue(announced)),
            },
        );
        let p = Proxy::from_node(&node).expect("valid");
        let mut snap = MeshSnapshot::default();
        assert_eq!(p.labels(&snap)["version"], "v1", "no pod known: announced");
        let pod = BTreeMap::from([("version".to_string(), "v2".to_string())]);
        snap.pod_labels
            .insert("web-1.other".into(), pod.clone().into());
        assert_eq!(
            p.labels(&snap)["version"],
            "v1",
            "a pod of another namespace"
        );
        snap.pod_labels.insert("web-1.shop".into(), pod.into());
        assert_eq!(p.labels(&snap)["version"], "v2", "its pod's labels");
    }

    #[test]
    fn reads_interception_mode_and_namespace() {
        let p = Proxy::from_node(&local_node(
            "sidecar~127.0.0.1~app.shop~shop.svc.cluster.local",
        ))
        .expect("valid");
        assert!(p.is_local_mode());
        assert_eq!(p.namespace(), "shop");
        let p = Proxy::from_node(&Node {
            id: "sidecar~10.0.0.1~app.shop~shop.svc.cluster.local".into(),
            ..Default::default()
        })
        .expect("valid");
        assert!(!p.is_local_mode());
        assert!(Proxy::from_node(&Node::default()).is_err());
    }
}
