//! Turns the text of one config file into typed resources.
//!
//! Each YAML document is handled on its own: a bad document is reported with
//! the file, its position in the file, the resource it names and the field at
//! fault, and the other documents still load.

// A ConfigError is built once per bad document, never on a hot path; keeping
// it unboxed keeps the error plumbing plain.
#![allow(clippy::result_large_err)]

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use mesh_model::istio::{
    DestinationRule, Gateway, ServiceEntry, Sidecar, VirtualService, WorkloadEntry,
};
use mesh_model::validation::{
    validate_destination_rule, validate_gateway, validate_service_entry, validate_sidecar,
    validate_virtual_service, validate_workload_entry, ValidationErrors,
};
use mesh_model::{Config, ConfigKey, ConfigKind, ConfigMeta};
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::registry::kube::{NamespaceInfo, NodeInfo, PodInfo};
use crate::resource::Resource;
use k8s_openapi::api::core::v1::{Endpoints, Namespace, Node, Pod};

/// Namespace given to resources that do not name one, as `kubectl apply`
/// would with the default context.
pub const DEFAULT_NAMESPACE: &str = "default";

/// A problem with one file, or one document in it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigError {
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

/// What one file yields.
#[derive(Debug, Default)]
pub struct ParsedFile {
    pub resources: Vec<Resource>,
    pub errors: Vec<ConfigError>,
    /// Resources the file names whose documents were rejected: their last
    /// good version stays in force.
    pub rejected: Vec<ConfigKey>,
}

/// A file that could not be read or parsed at all: the file's previous
/// contents stay in force.
pub type FileError = ConfigError;

impl ConfigError {
    /// A problem with a whole file rather than one resource in it.
    pub fn file(file: &Path, message: impl Into<String>) -> ConfigError {
        ConfigError {
            file: file.to_path_buf(),
            document: None,
            resource: None,
            field: None,
            message: message.into(),
        }
    }
}

/// Splits a file into JSON values, one per document.
fn documents(file: &Path, text: &str) -> Result<Vec<Value>, FileError> {
    let is_json = file
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("json"));
    if is_json {
        let v: Value = serde_json::from_str(text)
            .map_err(|e| ConfigError::file(file, format!("not valid JSON: {e}")))?;
        return Ok(vec![v]);
    }
    let mut out = Vec::new();
    for doc in serde_yaml::Deserializer::from_str(text) {
        let v = <Value as serde::Deserialize>::deserialize(doc)
            .map_err(|e| ConfigError::file(file, format!("not valid YAML: {e}")))?;
        out.push(v);
    }
    Ok(out)
}

/// Parses a whole file. `Err` means nothing in the file could be trusted.
pub fn parse_file(file: &Path, text: &str) -> Result<ParsedFile, FileError> {
    let docs = documents(file, text)?;
    let mut parsed = ParsedFile::default();
    for (i, doc) in docs.into_iter().enumerate() {
        let n = i + 1;
        if doc.is_null() {
            continue; // an empty document, as between two `---`
        }
        let items = match list_items(&doc) {
            Some(items) => items,
            None => vec![doc],
        };
        for item in items {
            match parse_object(item) {
                Ok(r) => parsed.resources.push(r),
                Err(e) => {
                    if let Some(key) = &e.resource {
                        parsed.rejected.push(key.clone());
                    }
                    parsed.errors.push(ConfigError {
                        file: file.to_path_buf(),
                        document: Some(n),
                        ..e
                    });
                }
            }
        }
    }
    Ok(parsed)
}

/// `kind: List` (as `kubectl get -o yaml` writes) holds resources in `items`.
fn list_items(doc: &Value) -> Option<Vec<Value>> {
    if doc.get("kind")?.as_str()? != "List" {
        return None;
    }
    Some(doc.get("items")?.as_array()?.clone())
}

fn doc_error(
    resource: Option<ConfigKey>,
    field: Option<String>,
    message: impl Into<String>,
) -> ConfigError {
    ConfigError {
        file: PathBuf::new(),
        document: None,
        resource,
        field,
        message: message.into(),
    }
}

fn str_field<'a>(doc: &'a Value, field: &str) -> Result<&'a str, ConfigError> {
    match doc.get(field) {
        Some(Value::String(s)) if !s.is_empty() => Ok(s),
        Some(Value::String(_)) | None => Err(doc_error(None, Some(field.into()), "is required")),
        Some(_) => Err(doc_error(None, Some(field.into()), "must be a string")),
    }
}

/// One object, as a file's document or an API server's watch event holds
/// it, to a validated resource. Errors carry no file; the caller adds it.
pub fn parse_object(doc: Value) -> Result<Resource, ConfigError> {
    if !doc.is_object() {
        return Err(doc_error(
            None,
            None,
            "a resource must be a mapping with apiVersion, kind and metadata",
        ));
    }
    let api_version = str_field(&doc, "apiVersion")?.to_string();
    let kind_name = str_field(&doc, "kind")?.to_string();
    let group = api_version.split_once('/').map(|(g, _)| g).unwrap_or("");
    let kind = match (group, kind_name.as_str()) {
        ("networking.istio.io", "VirtualService") => ConfigKind::VirtualService,
        ("networking.istio.io", "DestinationRule") => ConfigKind::DestinationRule,
        ("networking.istio.io", "ServiceEntry") => ConfigKind::ServiceEntry,
        ("networking.istio.io", "WorkloadEntry") => ConfigKind::WorkloadEntry,
        ("networking.istio.io", "Sidecar") => ConfigKind::Sidecar,
        ("networking.istio.io", "Gateway") => ConfigKind::Gateway,
        ("", "Service") if api_version == "v1" => ConfigKind::Service,
        ("discovery.k8s.io", "EndpointSlice") if api_version == "discovery.k8s.io/v1" => {
            ConfigKind::EndpointSlice
        }
        ("", "Endpoints") if api_version == "v1" => ConfigKind::Endpoints,
        ("", "Pod") if api_version == "v1" => ConfigKind::Pod,
        ("", "Node") if api_version == "v1" => ConfigKind::Node,
        ("", "Namespace") if api_version == "v1" => ConfigKind::Namespace,
        _ => {
            return Err(doc_error(
                None,
                Some("kind".into()),
                format!("unsupported kind {kind_name:?} of apiVersion {api_version:?}"),
            ))
        }
    };
    let mut meta: ConfigMeta = deserialize_at(
        doc.get("metadata").cloned().unwrap_or(Value::Null),
        "metadata",
        None,
    )?;
    if matches!(kind, ConfigKind::Node | ConfigKind::Namespace) {
        meta.namespace.clear(); // cluster-scoped
    } else if meta.namespace.is_empty() {
        meta.namespace = DEFAULT_NAMESPACE.to_string();
    }
    let key = ConfigKey {
        kind,
        namespace: meta.namespace.clone(),
        name: meta.name.clone(),
    };
    if meta.name.is_empty() {
        return Err(doc_error(
            None,
            Some("metadata.name".into()),
            format!("{kind} needs a name"),
        ));
    }
    let spec = || {
        doc.get("spec")
            .cloned()
            .unwrap_or(Value::Object(Default::default()))
    };
    let k = Some(key.clone());
    let resource = match kind {
        ConfigKind::VirtualService => {
            let spec: VirtualService = deserialize_at(spec(), "spec", k.clone())?;
            validated(&key, validate_virtual_service(&spec))?;
            Resource::VirtualService(Arc::new(Config { meta, spec }))
        }
        ConfigKind::DestinationRule => {
            let spec: DestinationRule = deserialize_at(spec(), "spec", k.clone())?;
            validated(&key, validate_destination_rule(&spec))?;
            Resource::DestinationRule(Arc::new(Config { meta, spec }))
        }
        ConfigKind::ServiceEntry => {
            let spec: ServiceEntry = deserialize_at(spec(), "spec", k.clone())?;
            validated(&key, validate_service_entry(&spec))?;
            Resource::ServiceEntry(Arc::new(Config { meta, spec }))
        }
        ConfigKind::WorkloadEntry => {
            let spec: WorkloadEntry = deserialize_at(spec(), "spec", k.clone())?;
            validated(&key, validate_workload_entry(&spec))?;
            Resource::WorkloadEntry(Arc::new(Config { meta, spec }))
        }
        ConfigKind::Sidecar => {
            let spec: Sidecar = deserialize_at(spec(), "spec", k.clone())?;
            validated(&key, validate_sidecar(&spec))?;
            Resource::Sidecar(Arc::new(Config { meta, spec }))
        }
        ConfigKind::Gateway => {
            let spec: Gateway = deserialize_at(spec(), "spec", k.clone())?;
            validated(&key, validate_gateway(&spec))?;
            Resource::Gateway(Arc::new(Config { meta, spec }))
        }
        ConfigKind::Service => {
            let mut svc: k8s_openapi::api::core::v1::Service = deserialize_at(doc, "", k)?;
            svc.metadata.namespace = Some(meta.namespace);
            Resource::KubeService(Arc::new(svc))
        }
        ConfigKind::EndpointSlice => {
            let mut slice: k8s_openapi::api::discovery::v1::EndpointSlice =
                deserialize_at(doc, "", k)?;
            slice.metadata.namespace = Some(meta.namespace);
            Resource::EndpointSlice(Arc::new(slice))
        }
        ConfigKind::Endpoints => {
            let mut endpoints: Endpoints = deserialize_at(doc, "", k)?;
            endpoints.metadata.namespace = Some(meta.namespace);
            Resource::KubeEndpoints(Arc::new(endpoints))
        }
        ConfigKind::Pod => {
            let mut pod: Pod = deserialize_at(doc, "", k.clone())?;
            pod.metadata.namespace = Some(meta.namespace);
            let info = PodInfo::from_pod(&pod)
                .ok_or_else(|| doc_error(k, Some("metadata.name".into()), "is required"))?;
            Resource::Pod(Arc::new(info))
        }
        ConfigKind::Node => {
            let node: Node = deserialize_at(doc, "", k.clone())?;
            let info = NodeInfo::from_node(&node)
                .ok_or_else(|| doc_error(k, Some("metadata.name".into()), "is required"))?;
            Resource::Node(Arc::new(info))
        }
        ConfigKind::Namespace => {
            let ns: Namespace = deserialize_at(doc, "", k.clone())?;
            let info = NamespaceInfo::from_namespace(&ns)
                .ok_or_else(|| doc_error(k, Some("metadata.name".into()), "is required"))?;
            Resource::Namespace(Arc::new(info))
        }
    };
    Ok(resource)
}

fn validated(key: &ConfigKey, result: Result<(), ValidationErrors>) -> Result<(), ConfigError> {
    result.map_err(|errs| {
        let first = errs.0.first();
        let field = first.map(|e| e.field.clone());
        // The first problem is named as the field; the message lists all.
        let message = if errs.0.len() == 1 {
            first.map(|e| e.message.clone()).unwrap_or_default()
        } else {
            format!("{} problems: {errs}", errs.0.len())
        };
        doc_error(Some(key.clone()), field, message)
    })
}

/// Deserializes `value`, reporting the path of the field that failed.
fn deserialize_at<T: DeserializeOwned>(
    value: Value,
    prefix: &str,
    resource: Option<ConfigKey>,
) -> Result<T, ConfigError> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let inner = e.path().to_string();
        let field = match (prefix.is_empty(), inner == ".") {
            (true, _) => inner,
            (false, true) => prefix.to_string(),
            (false, false) => format!("{prefix}.{inner}"),
        };
        doc_error(resource, Some(field), e.into_inner().to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> ParsedFile {
        parse_file(Path::new("/cfg/test.yaml"), text).expect("file parses")
    }

    #[test]
    fn multi_document_with_one_bad_document() {
        let text = r#"
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: good}
spec:
  hosts: [reviews]
  http:
  - route:
    - destination: {host: reviews}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: bad, namespace: prod}
spec:
  hosts: [reviews]
  http:
  - route:
    - destination: {host: reviews}
      weight: "eighty"
"#;
        let p = parse(text);
        assert_eq!(p.resources.len(), 1);
        assert_eq!(p.resources[0].key().name, "good");
        assert_eq!(p.resources[0].key().namespace, DEFAULT_NAMESPACE);
        assert_eq!(p.errors.len(), 1);
        let e = &p.errors[0];
        assert_eq!(e.document, Some(2));
        assert_eq!(e.field.as_deref(), Some("spec.http[0].route[0].weight"));
        let msg = e.to_string();
        assert!(msg.starts_with("/cfg/test.yaml: document 2: VirtualService prod/bad: spec.http[0].route[0].weight: invalid type"), "{msg}");
        assert_eq!(p.rejected.len(), 1);
    }

    #[test]
    fn unknown_fields_and_kinds_are_errors() {
        let p = parse("apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: a}\nspec: {hosts: [a], htpp: []}\n");
        assert_eq!(p.errors[0].field.as_deref(), Some("spec.htpp"));
        assert!(
            p.errors[0].message.contains("unknown field `htpp`"),
            "{}",
            p.errors[0]
        );

        let p = parse("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n");
        assert!(
            p.errors[0]
                .message
                .contains("unsupported kind \"ConfigMap\""),
            "{}",
            p.errors[0]
        );
        assert!(p.rejected.is_empty());
    }

    #[test]
    fn semantic_errors_name_the_field() {
        let text = r#"
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: r}
spec:
  hosts: [reviews]
  http:
  - match: [{uri: {regex: "/("}}]
    route: [{destination: {host: reviews}}]
"#;
        let p = parse(text);
        assert_eq!(
            p.errors[0].field.as_deref(),
            Some("spec.http[0].match[0].uri")
        );
        assert_eq!(p.rejected[0].name, "r");
    }

    #[test]
    fn syntax_error_fails_the_file() {
        let err = parse_file(Path::new("/cfg/x.yaml"), "a: [unclosed\n").expect_err("bad yaml");
        assert!(
            err.to_string().starts_with("/cfg/x.yaml: not valid YAML"),
            "{err}"
        );
        let err = parse_file(Path::new("/cfg/x.json"), "{").expect_err("bad json");
        assert!(err.to_string().contains("not valid JSON"), "{err}");
    }

    #[test]
    fn kubernetes_objects_and_lists() {
        let text = r#"
apiVersion: v1
kind: List
items:
- apiVersion: v1
  kind: Service
  metadata: {name: ratings, namespace: default}
  spec:
    ports: [{name: http, port: 9080}]
- apiVersion: discovery.k8s.io/v1
  kind: EndpointSlice
  metadata: {name: ratings-1, labels: {kubernetes.io/service-name: ratings}}
  addressType: IPv4
  endpoints: [{addresses: [10.0.0.1]}]
  ports: [{name: http, port: 9080}]
"#;
        let p = parse(text);
        assert!(p.errors.is_empty(), "{:?}", p.errors);
        let kinds: Vec<ConfigKind> = p.resources.iter().map(|r| r.key().kind).collect();
        assert_eq!(kinds, vec![ConfigKind::Service, ConfigKind::EndpointSlice]);
    }
}
