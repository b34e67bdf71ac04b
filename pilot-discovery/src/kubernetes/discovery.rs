//! What the API server serves: which endpoints API to watch, and which Istio
//! networking kinds are installed (and at which version).

use std::fmt;
use std::str::FromStr;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{APIGroup, APIGroupList, APIResourceList};
use kube::core::{ApiResource, GroupVersionKind};
use kube::Client;
use mesh_model::kinds::{KindInfo, KINDS};
use mesh_model::ConfigKind;

const DISCOVERY_GROUP: &str = "discovery.k8s.io";

/// The custom resource kinds the model reads (Istio's), from the kind table.
pub fn custom_kinds() -> impl Iterator<Item = &'static KindInfo> {
    KINDS.iter().filter(|k| k.is_istio())
}

/// The API groups of [`custom_kinds`], each once.
fn custom_groups() -> Vec<&'static str> {
    let mut groups: Vec<&str> = custom_kinds().map(|k| k.group).collect();
    groups.sort_unstable();
    groups.dedup();
    groups
}

/// The custom kind named `kind` in `group`, if the model reads it.
pub fn custom_kind(group: &str, kind: &str) -> Option<ConfigKind> {
    custom_kinds()
        .find(|k| k.group == group && k.kind.as_str() == kind)
        .map(|k| k.kind)
}

/// The operator's choice of endpoints API (`--endpoint-api`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndpointApiChoice {
    /// EndpointSlices where `discovery.k8s.io/v1` is served, else Endpoints.
    Auto,
    EndpointSlice,
    Endpoints,
}

impl FromStr for EndpointApiChoice {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "auto" => Ok(EndpointApiChoice::Auto),
            "endpointslice" | "endpointslices" => Ok(EndpointApiChoice::EndpointSlice),
            "endpoints" => Ok(EndpointApiChoice::Endpoints),
            _ => Err(format!(
                "{s:?} is not an endpoints API (valid: auto, endpointslice, endpoints)"
            )),
        }
    }
}

/// The endpoints API being watched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndpointApi {
    /// `discovery.k8s.io/v1` EndpointSlices.
    EndpointSlice,
    /// core/v1 Endpoints.
    Endpoints,
}

impl fmt::Display for EndpointApi {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            EndpointApi::EndpointSlice => "discovery.k8s.io/v1 EndpointSlice",
            EndpointApi::Endpoints => "v1 Endpoints",
        })
    }
}

/// The endpoints API to use on a server whose API groups are `groups`:
/// EndpointSlices only where `discovery.k8s.io/v1` is served (Kubernetes
/// 1.21+); v1beta1 slices lack fields the conversion reads.
pub fn endpoint_api_of(groups: &APIGroupList) -> EndpointApi {
    let serves_v1 = groups
        .groups
        .iter()
        .filter(|g| g.name == DISCOVERY_GROUP)
        .flat_map(|g| &g.versions)
        .any(|v| v.version == "v1");
    if serves_v1 {
        EndpointApi::EndpointSlice
    } else {
        EndpointApi::Endpoints
    }
}

/// One Istio kind and where the API server serves it.
#[derive(Debug, Clone)]
pub struct IstioKind {
    pub kind: ConfigKind,
    pub api: ApiResource,
}

/// The custom kinds the model reads that are served, each at the first
/// version that serves it. `lists` are the resource lists of the kinds'
/// groups, each group's versions preferred first.
pub fn istio_kinds_of(lists: &[APIResourceList]) -> Vec<IstioKind> {
    let mut out: Vec<IstioKind> = Vec::new();
    for list in lists {
        let Some((group, version)) = list.group_version.split_once('/') else {
            continue;
        };
        for r in &list.resources {
            if r.name.contains('/') {
                continue; // a subresource such as `virtualservices/status`
            }
            let Some(kind) = custom_kind(group, &r.kind) else {
                continue;
            };
            if out.iter().any(|k| k.kind == kind) {
                continue;
            }
            out.push(IstioKind {
                kind,
                api: ApiResource::from_gvk_with_plural(
                    &GroupVersionKind::gvk(group, version, &r.kind),
                    &r.name,
                ),
            });
        }
    }
    out
}

/// The versions of `group`, preferred first.
fn versions_preferred_first(group: &APIGroup) -> Vec<String> {
    let preferred = group
        .preferred_version
        .as_ref()
        .map(|v| v.group_version.clone());
    let mut out: Vec<String> = preferred.iter().cloned().collect();
    for v in &group.versions {
        if Some(&v.group_version) != preferred.as_ref() {
            out.push(v.group_version.clone());
        }
    }
    out
}

/// What the watches need to know of the API server.
#[derive(Debug, Clone)]
pub struct Served {
    pub endpoint_api: EndpointApi,
    pub istio: Vec<IstioKind>,
}

pub async fn discover(client: &Client, choice: EndpointApiChoice) -> Result<Served, kube::Error> {
    let groups = client.list_api_groups().await?;
    let detected = endpoint_api_of(&groups);
    let endpoint_api = match choice {
        EndpointApiChoice::Auto => detected,
        EndpointApiChoice::EndpointSlice => EndpointApi::EndpointSlice,
        EndpointApiChoice::Endpoints => EndpointApi::Endpoints,
    };
    if endpoint_api == EndpointApi::EndpointSlice && detected != endpoint_api {
        tracing::error!("--endpoint-api endpointslice, but this API server does not serve {DISCOVERY_GROUP}/v1: the endpoints watch will fail and pilot-discovery will not become ready; use --endpoint-api auto");
    }
    let mut lists = Vec::new();
    let wanted = custom_groups();
    for group in groups
        .groups
        .iter()
        .filter(|g| wanted.contains(&g.name.as_str()))
    {
        for gv in versions_preferred_first(group) {
            lists.push(client.list_api_group_resources(&gv).await?);
        }
    }
    let istio = istio_kinds_of(&lists);
    if istio.is_empty() {
        tracing::warn!(groups = ?wanted, "the Istio CRDs are not installed; they are watched for and read once installed");
    }
    Ok(Served {
        endpoint_api,
        istio,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    // `/apis` as a Kubernetes 1.20 server answers (trimmed to two groups):
    // discovery.k8s.io is served at v1beta1 only.
    const APIS_1_20: &str = r#"{"kind":"APIGroupList","apiVersion":"v1","groups":[
      {"name":"apps","versions":[{"groupVersion":"apps/v1","version":"v1"}],
       "preferredVersion":{"groupVersion":"apps/v1","version":"v1"}},
      {"name":"discovery.k8s.io","versions":[{"groupVersion":"discovery.k8s.io/v1beta1","version":"v1beta1"}],
       "preferredVersion":{"groupVersion":"discovery.k8s.io/v1beta1","version":"v1beta1"}}]}"#;

    // And as a 1.21+ server answers.
    const APIS_1_25: &str = r#"{"kind":"APIGroupList","apiVersion":"v1","groups":[
      {"name":"discovery.k8s.io","versions":[{"groupVersion":"discovery.k8s.io/v1","version":"v1"}],
       "preferredVersion":{"groupVersion":"discovery.k8s.io/v1","version":"v1"}}]}"#;

    #[test]
    fn endpoint_slices_only_where_v1_is_served() {
        let old: APIGroupList = serde_json::from_str(APIS_1_20).expect("1.20 JSON");
        let new: APIGroupList = serde_json::from_str(APIS_1_25).expect("1.25 JSON");
        assert_eq!(endpoint_api_of(&old), EndpointApi::Endpoints);
        assert_eq!(endpoint_api_of(&new), EndpointApi::EndpointSlice);
        let none = APIGroupList { groups: Vec::new() };
        assert_eq!(endpoint_api_of(&none), EndpointApi::Endpoints);
    }

    #[test]
    fn istio_kinds_prefer_the_preferred_version_and_skip_subresources() {
        let v1: APIResourceList = serde_json::from_str(
            r#"{"groupVersion":"networking.istio.io/v1","resources":[
              {"name":"virtualservices","singularName":"virtualservice","namespaced":true,"kind":"VirtualService","verbs":["get","list","watch"]},
              {"name":"virtualservices/status","singularName":"","namespaced":true,"kind":"VirtualService","verbs":["get"]},
              {"name":"envoyfilters","singularName":"envoyfilter","namespaced":true,"kind":"EnvoyFilter","verbs":["list"]}]}"#,
        )
        .expect("v1 list");
        let v1alpha3: APIResourceList = serde_json::from_str(
            r#"{"groupVersion":"networking.istio.io/v1alpha3","resources":[
              {"name":"virtualservices","singularName":"virtualservice","namespaced":true,"kind":"VirtualService","verbs":["list"]},
              {"name":"destinationrules","singularName":"destinationrule","namespaced":true,"kind":"DestinationRule","verbs":["list"]}]}"#,
        )
        .expect("v1alpha3 list");
        let kinds = istio_kinds_of(&[v1, v1alpha3]);
        let found: Vec<(ConfigKind, &str, &str)> = kinds
            .iter()
            .map(|k| (k.kind, k.api.version.as_str(), k.api.plural.as_str()))
            .collect();
        assert_eq!(
            found,
            vec![
                (ConfigKind::VirtualService, "v1", "virtualservices"),
                (ConfigKind::DestinationRule, "v1alpha3", "destinationrules"),
            ]
        );
    }

    #[test]
    fn endpoint_api_choice_parses() {
        assert_eq!("auto".parse(), Ok(EndpointApiChoice::Auto));
        assert_eq!(
            "EndpointSlice".parse(),
            Ok(EndpointApiChoice::EndpointSlice)
        );
        assert_eq!("endpoints".parse(), Ok(EndpointApiChoice::Endpoints));
        assert!("slices".parse::<EndpointApiChoice>().is_err());
    }
}
