//! One object, as a file's document or an API server's watch event holds
//! it, to a validated resource: the one decoder both adapters use, so they
//! accept the same objects and report errors alike. The kinds, where they
//! are served and how their specs decode are mesh-model's kind table.

// A ConfigError is built once per bad object, never on a hot path; keeping
// it unboxed keeps the error plumbing plain.
#![allow(clippy::result_large_err)]

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Endpoints, Namespace, Node, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use mesh_model::kinds::{self, deserialize_at, Decode, KindInfo, SpecError};
use mesh_model::{ConfigKey, ConfigKind, ConfigMeta};
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::resource::{NamespaceInfo, NodeInfo, PodInfo, Resource};

/// Namespace given to resources that do not name one, as `kubectl apply`
/// would with the default context.
pub const DEFAULT_NAMESPACE: &str = "default";

/// A problem with one input: a file, a document in it, or an object from
/// an API server.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigError {
    /// The file, or `kubernetes://<cluster>`, the input came from.
    pub file: PathBuf,
    /// 1-based position of the document in a multi-document file.
    pub document: Option<usize>,
    /// `Kind namespace/name`, once known.
    pub resource: Option<ConfigKey>,
    /// Path of the offending field, such as `spec.http[0].route`.
    pub field: Option<String>,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(d) = self.document {
            write!(f, ": document {d}")?;
        }
        if let Some(r) = &self.resource {
            write!(f, ": {} {}/{}", r.kind, r.namespace, r.name)?;
        }
        if let Some(field) = &self.field {
            write!(f, ": {field}")?;
        }
        write!(f, ": {}", self.message)
    }
}

impl ConfigError {
    /// A problem with a whole input rather than one resource in it.
    pub fn file(file: &Path, message: impl Into<String>) -> ConfigError {
        ConfigError {
            file: file.to_path_buf(),
            document: None,
            resource: None,
            field: None,
            message: message.into(),
        }
    }

    /// A problem with an object, before the caller says where it came from.
    fn object(
        resource: Option<ConfigKey>,
        field: Option<String>,
        message: impl Into<String>,
    ) -> Self {
        ConfigError {
            file: PathBuf::new(),
            document: None,
            resource,
            field,
            message: message.into(),
        }
    }

    fn spec(resource: Option<ConfigKey>, e: SpecError) -> Self {
        ConfigError::object(resource, e.field, e.message)
    }
}

fn str_field<'a>(doc: &'a Value, field: &str) -> Result<&'a str, ConfigError> {
    match doc.get(field) {
        Some(Value::String(s)) if !s.is_empty() => Ok(s),
        Some(Value::String(_)) | None => {
            Err(ConfigError::object(None, Some(field.into()), "is required"))
        }
        Some(_) => Err(ConfigError::object(
            None,
            Some(field.into()),
            "must be a string",
        )),
    }
}

/// The row of the object's kind, or why it has none.
fn kind_of(api_version: &str, kind: &str) -> Result<&'static KindInfo, ConfigError> {
    match kinds::find(api_version, kind) {
        Some(info) if info.reads(api_version) => Ok(info),
        Some(info) => Err(ConfigError::object(
            None,
            Some("apiVersion".into()),
            format!(
                "{kind} is read at {}, not {api_version:?}",
                info.versions
                    .iter()
                    .map(|v| info.api_version(v))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        )),
        None => Err(ConfigError::object(
            None,
            Some("kind".into()),
            format!("unsupported kind {kind:?} of apiVersion {api_version:?}"),
        )),
    }
}

/// One object to a validated resource. Errors carry no file; the caller
/// adds it.
pub fn decode(doc: Value) -> Result<Resource, ConfigError> {
    if !doc.is_object() {
        return Err(ConfigError::object(
            None,
            None,
            "a resource must be a mapping with apiVersion, kind and metadata",
        ));
    }
    let info = kind_of(str_field(&doc, "apiVersion")?, str_field(&doc, "kind")?)?;
    let kind = info.kind;
    let mut meta: ConfigMeta = deserialize_at(
        doc.get("metadata").cloned().unwrap_or(Value::Null),
        "metadata",
    )
    .map_err(|e| ConfigError::spec(None, e))?;
    if info.cluster_scoped {
        meta.namespace.clear();
    } else if meta.namespace.is_empty() {
        meta.namespace = DEFAULT_NAMESPACE.to_string();
    }
    let key = ConfigKey {
        kind,
        namespace: meta.namespace.clone(),
        name: meta.name.clone(),
    };
    if meta.name.is_empty() {
        return Err(ConfigError::object(
            None,
            Some("metadata.name".into()),
            format!("{kind} needs a name"),
        ));
    }
    match info.decode {
        Decode::Istio(decode_spec) => {
            let spec = doc
                .get("spec")
                .cloned()
                .unwrap_or(Value::Object(Default::default()));
            decode_spec(meta, spec)
                .map(Resource::Istio)
                .map_err(|e| ConfigError::spec(Some(key), e))
        }
        Decode::Platform => platform(doc, key),
    }
}

/// A Kubernetes object, as the model reads it.
fn platform(doc: Value, key: ConfigKey) -> Result<Resource, ConfigError> {
    let k = Some(key.clone());
    let namespace = Some(key.namespace.clone());
    let no_name = || ConfigError::object(k.clone(), Some("metadata.name".into()), "is required");
    Ok(match key.kind {
        ConfigKind::Service => {
            let mut svc: Service = typed(doc, &key)?;
            svc.metadata.namespace = namespace;
            Resource::KubeService(Arc::new(svc))
        }
        ConfigKind::EndpointSlice => {
            let mut slice: EndpointSlice = typed(doc, &key)?;
            slice.metadata.namespace = namespace;
            Resource::EndpointSlice(Arc::new(slice))
        }
        ConfigKind::Endpoints => {
            let mut endpoints: Endpoints = typed(doc, &key)?;
            endpoints.metadata.namespace = namespace;
            Resource::KubeEndpoints(Arc::new(endpoints))
        }
        ConfigKind::Pod => {
            let mut pod: Pod = typed(doc, &key)?;
            pod.metadata.namespace = namespace;
            Resource::Pod(Arc::new(PodInfo::from_pod(&pod).ok_or_else(no_name)?))
        }
        ConfigKind::Node => {
            let node: Node = typed(doc, &key)?;
            Resource::Node(Arc::new(NodeInfo::from_node(&node).ok_or_else(no_name)?))
        }
        ConfigKind::Namespace => {
            let ns: Namespace = typed(doc, &key)?;
            Resource::Namespace(Arc::new(
                NamespaceInfo::from_namespace(&ns).ok_or_else(no_name)?,
            ))
        }
        // The kind table says how every other kind decodes.
        other => {
            return Err(ConfigError::object(
                k,
                Some("kind".into()),
                format!("{other} has no Kubernetes decoder"),
            ))
        }
    })
}

fn typed<T: DeserializeOwned>(doc: Value, key: &ConfigKey) -> Result<T, ConfigError> {
    deserialize_at(doc, "").map_err(|e| ConfigError::spec(Some(key.clone()), e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_of_the_table_decodes() {
        for row in kinds::KINDS {
            let object = serde_json::json!({
                "apiVersion": row.api_version(row.versions[0]),
                "kind": row.kind.as_str(),
                "metadata": {"name": "a", "namespace": "shop"},
            });
            match decode(object) {
                Ok(r) => {
                    assert_eq!(r.key().kind, row.kind);
                    let ns = if row.cluster_scoped { "" } else { "shop" };
                    assert_eq!(r.key().namespace, ns, "{}", row.kind);
                }
                // An empty spec may be invalid; it must not be undecodable.
                Err(e) => assert!(
                    row.is_istio() && e.field.as_deref().is_some_and(|f| f.starts_with("spec")),
                    "{}: {e}",
                    row.kind
                ),
            }
        }
    }

    #[test]
    fn an_unread_version_names_those_read() {
        let e = decode(serde_json::json!({
            "apiVersion": "networking.istio.io/v2",
            "kind": "Gateway",
            "metadata": {"name": "a"},
        }))
        .expect_err("v2");
        assert_eq!(e.field.as_deref(), Some("apiVersion"));
        assert_eq!(
            e.message,
            "Gateway is read at networking.istio.io/v1, networking.istio.io/v1beta1, networking.istio.io/v1alpha3, not \"networking.istio.io/v2\""
        );
        let e = decode(
            serde_json::json!({"apiVersion": "v2", "kind": "Service", "metadata": {"name": "a"}}),
        )
        .expect_err("v2");
        assert_eq!(e.message, "Service is read at v1, not \"v2\"");
    }
}
