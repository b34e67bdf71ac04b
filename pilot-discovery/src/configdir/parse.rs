//! Turns the text of one config file into typed resources.
//!
//! Each YAML document is handled on its own: a bad document is reported with
//! the file, its position in the file, the resource it names and the field at
//! fault, and the other documents still load.

// A ConfigError is built once per bad document, never on a hot path; keeping
// it unboxed keeps the error plumbing plain.
#![allow(clippy::result_large_err)]

use std::path::Path;

use mesh_model::ConfigKey;
use serde_json::Value;

use crate::objects::{decode, ConfigError};
use crate::resource::Resource;

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

/// Splits a file into JSON values, one per document that holds something.
fn documents(file: &Path, text: &str) -> Result<Vec<Value>, FileError> {
    let is_json = file
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("json"));
    if is_json {
        let v: Value = serde_json::from_str(text)
            .map_err(|e| ConfigError::file(file, format!("not valid JSON: {e}")))?;
        return Ok(vec![v]);
    }
    mesh_model::yaml::documents(text)
        .map_err(|e| ConfigError::file(file, format!("not valid YAML: {e}")))
}

/// Parses a whole file. `Err` means nothing in the file could be trusted.
pub fn parse_file(file: &Path, text: &str) -> Result<ParsedFile, FileError> {
    let docs = documents(file, text)?;
    let mut parsed = ParsedFile::default();
    for (i, doc) in docs.into_iter().enumerate() {
        let n = i + 1;
        let items = match list_items(&doc) {
            Some(items) => items,
            None => vec![doc],
        };
        for item in items {
            match decode(item) {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::objects::DEFAULT_NAMESPACE;
    use mesh_model::ConfigKind;

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
