//! Objects from the API server to the resources every source produces. The
//! Istio custom resources go through the same decoder as the config
//! folder's (`objects.rs`), so both sources validate alike and report
//! errors alike.

use std::path::PathBuf;
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Endpoints, Namespace, Node, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::DynamicObject;
use kube::core::ApiResource;
use mesh_model::{ConfigKey, ConfigKind};
use serde_json::Value;

use crate::objects::{decode, ConfigError};
use crate::resource::{strip_volatile, NamespaceInfo, NodeInfo, PodInfo, Resource};

/// What one watched object becomes: a resource, or the error that rejects it
/// (its last good version, if any, stays in force). Boxed: errors are rare
/// and a watch event should stay small.
pub type Converted = Result<Resource, Box<ConfigError>>;

/// Where errors about objects of this cluster say they come from.
pub fn origin(cluster_id: &str) -> PathBuf {
    PathBuf::from(format!("kubernetes://{cluster_id}"))
}

pub fn key(kind: ConfigKind, namespace: Option<&str>, name: Option<&str>) -> ConfigKey {
    ConfigKey {
        kind,
        namespace: namespace.unwrap_or_default().to_string(),
        name: name.unwrap_or_default().to_string(),
    }
}

fn missing_name(kind: ConfigKind, origin: PathBuf) -> Box<ConfigError> {
    Box::new(ConfigError {
        file: origin,
        document: None,
        resource: Some(key(kind, None, None)),
        field: Some("metadata.name".into()),
        message: "is required".into(),
    })
}

pub fn service(mut s: Service) -> Converted {
    strip_volatile(&mut s.metadata);
    s.status = None;
    Ok(Resource::KubeService(Arc::new(s)))
}

pub fn endpoints(mut e: Endpoints) -> Converted {
    strip_volatile(&mut e.metadata);
    Ok(Resource::KubeEndpoints(Arc::new(e)))
}

pub fn endpoint_slice(mut s: EndpointSlice) -> Converted {
    strip_volatile(&mut s.metadata);
    Ok(Resource::EndpointSlice(Arc::new(s)))
}

pub fn pod(p: Pod, origin: PathBuf) -> Converted {
    PodInfo::from_pod(&p)
        .map(|info| Resource::Pod(Arc::new(info)))
        .ok_or_else(|| missing_name(ConfigKind::Pod, origin))
}

pub fn node(n: Node, origin: PathBuf) -> Converted {
    NodeInfo::from_node(&n)
        .map(|info| Resource::Node(Arc::new(info)))
        .ok_or_else(|| missing_name(ConfigKind::Node, origin))
}

pub fn namespace(n: Namespace, origin: PathBuf) -> Converted {
    NamespaceInfo::from_namespace(&n)
        .map(|info| Resource::Namespace(Arc::new(info)))
        .ok_or_else(|| missing_name(ConfigKind::Namespace, origin))
}

/// An Istio custom resource, validated as the config folder validates it.
pub fn custom_resource(obj: DynamicObject, api: &ApiResource, origin: PathBuf) -> Converted {
    let mut value = serde_json::to_value(&obj).map_err(|e| {
        Box::new(ConfigError {
            file: origin.clone(),
            document: None,
            resource: None,
            field: None,
            message: format!("cannot re-encode {}: {e}", api.kind),
        })
    })?;
    if let Value::Object(map) = &mut value {
        // List items may come without their type; the watch knows it.
        map.insert("apiVersion".into(), Value::String(api.api_version.clone()));
        map.insert("kind".into(), Value::String(api.kind.clone()));
        // The parser ignores the rest of the metadata but keeps annotations:
        // this one copies the whole object and changes with every apply.
        if let Some(Value::Object(a)) = map
            .get_mut("metadata")
            .and_then(|m| m.get_mut("annotations"))
        {
            a.remove("kubectl.kubernetes.io/last-applied-configuration");
        }
    }
    decode(value).map_err(|e| Box::new(ConfigError { file: origin, ..e }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::core::GroupVersionKind;

    fn vs_api() -> ApiResource {
        ApiResource::from_gvk_with_plural(
            &GroupVersionKind::gvk("networking.istio.io", "v1", "VirtualService"),
            "virtualservices",
        )
    }

    #[test]
    fn custom_resources_are_validated_like_files() {
        // As a watch event carries it, without apiVersion and kind.
        let good: DynamicObject = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "r", "namespace": "shop", "resourceVersion": "7",
                         "managedFields": [{"manager": "kubectl"}]},
            "spec": {"hosts": ["reviews"], "http": [{"route": [{"destination": {"host": "reviews"}}]}]}
        }))
        .expect("object");
        let r = custom_resource(good, &vs_api(), origin("c1")).expect("valid");
        assert_eq!(
            r.key(),
            key(ConfigKind::VirtualService, Some("shop"), Some("r"))
        );

        let bad: DynamicObject = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "bad", "namespace": "shop"},
            "spec": {"hosts": ["reviews"], "http": [{"route": [{"destination": {"host": "reviews"}, "weight": "x"}]}]}
        }))
        .expect("object");
        let e = custom_resource(bad, &vs_api(), origin("c1")).expect_err("invalid");
        assert_eq!(
            e.to_string(),
            "kubernetes://c1: VirtualService shop/bad: spec.http[0].route[0].weight: invalid type: string \"x\", expected u32"
        );
    }

    #[test]
    fn volatile_metadata_does_not_make_a_change() {
        let svc = |rv: &str| -> Service {
            serde_json::from_value(serde_json::json!({
                "metadata": {"name": "a", "namespace": "n", "resourceVersion": rv},
                "spec": {"ports": [{"port": 80}]},
                "status": {"loadBalancer": {}}
            }))
            .expect("service")
        };
        assert_eq!(service(svc("1")), service(svc("2")));
    }
}
