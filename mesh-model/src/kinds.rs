//! Every kind of configuration the model reads, one row each: where it is
//! served (group, versions, plural), whether it is namespaced, how a change
//! to it is pushed, and how an object of it becomes a model value. The
//! folder parser, the Kubernetes watches, the debug pages, the fuzz targets
//! and the snapshot builder all take their list of kinds from here.
//!
//! Adding a kind: its type and its validation in `istio/<kind>.rs` and
//! `istio/<kind>/validate.rs`, its name in `config_kinds!` (config.rs), its
//! variant in [`IstioConfig`] and its row in [`KINDS`]. A kind named and not
//! given a row, or given one out of order, fails to compile; a variant the
//! snapshot builder does not handle fails to compile there.

use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

use crate::config::{Config, ConfigKey, ConfigKind, ConfigMeta};
use crate::istio::destination_rule::validate::validate_destination_rule;
use crate::istio::gateway::validate::validate_gateway;
use crate::istio::service_entry::validate::validate_service_entry;
use crate::istio::sidecar::validate::validate_sidecar;
use crate::istio::virtual_service::validate::validate_virtual_service;
use crate::istio::workload_entry::validate::validate_workload_entry;
use crate::istio::{
    DestinationRule, Gateway, ServiceEntry, Sidecar, VirtualService, WorkloadEntry,
};
use crate::validation::ValidationErrors;

/// What a change to an object makes a push do, as Istio labels
/// `pilot_inbound_updates`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum UpdateKind {
    /// Routing and policy: VirtualService, DestinationRule.
    Config,
    /// Service definitions: ServiceEntry, Kubernetes Service.
    Svc,
    /// Endpoints: WorkloadEntry, EndpointSlice.
    Eds,
}

impl UpdateKind {
    pub fn label(self) -> &'static str {
        match self {
            UpdateKind::Config => "config",
            UpdateKind::Svc => "svc",
            UpdateKind::Eds => "eds",
        }
    }
}

/// Istio's traffic-management API group.
pub const ISTIO_NETWORKING: &str = "networking.istio.io";

/// The versions Istio serves its networking kinds at, its storage version
/// first.
const ISTIO_VERSIONS: &[&str] = &["v1", "v1beta1", "v1alpha3"];

/// One kind's row.
#[derive(Debug, Clone, Copy)]
pub struct KindInfo {
    pub kind: ConfigKind,
    /// The API group; empty for Kubernetes' core group.
    pub group: &'static str,
    /// The versions an object may be written at, the preferred first.
    pub versions: &'static [&'static str],
    /// The resource name the API server serves the kind under.
    pub plural: &'static str,
    /// Nodes and namespaces belong to no namespace.
    pub cluster_scoped: bool,
    pub update: UpdateKind,
    pub decode: Decode,
}

/// How an object of a kind becomes a model value.
#[derive(Debug, Clone, Copy)]
pub enum Decode {
    /// An Istio kind: its spec, typed and validated.
    Istio(DecodeSpec),
    /// A Kubernetes object, which the platform adapters convert themselves:
    /// the model holds no Kubernetes types.
    Platform,
}

/// Turns an object's metadata and spec into its kind's model value.
pub type DecodeSpec = fn(ConfigMeta, Value) -> Result<IstioConfig, SpecError>;

/// One Istio configuration object, of any kind. Shared, not copied: a
/// source of thousands of objects hands every one to each snapshot.
#[derive(Debug, Clone, PartialEq)]
pub enum IstioConfig {
    VirtualService(Arc<Config<VirtualService>>),
    DestinationRule(Arc<Config<DestinationRule>>),
    ServiceEntry(Arc<Config<ServiceEntry>>),
    WorkloadEntry(Arc<Config<WorkloadEntry>>),
    Sidecar(Arc<Config<Sidecar>>),
    Gateway(Arc<Config<Gateway>>),
}

impl IstioConfig {
    pub fn kind(&self) -> ConfigKind {
        match self {
            IstioConfig::VirtualService(_) => ConfigKind::VirtualService,
            IstioConfig::DestinationRule(_) => ConfigKind::DestinationRule,
            IstioConfig::ServiceEntry(_) => ConfigKind::ServiceEntry,
            IstioConfig::WorkloadEntry(_) => ConfigKind::WorkloadEntry,
            IstioConfig::Sidecar(_) => ConfigKind::Sidecar,
            IstioConfig::Gateway(_) => ConfigKind::Gateway,
        }
    }

    pub fn meta(&self) -> &ConfigMeta {
        match self {
            IstioConfig::VirtualService(c) => &c.meta,
            IstioConfig::DestinationRule(c) => &c.meta,
            IstioConfig::ServiceEntry(c) => &c.meta,
            IstioConfig::WorkloadEntry(c) => &c.meta,
            IstioConfig::Sidecar(c) => &c.meta,
            IstioConfig::Gateway(c) => &c.meta,
        }
    }

    pub fn key(&self) -> ConfigKey {
        ConfigKey {
            kind: self.kind(),
            namespace: self.meta().namespace.clone(),
            name: self.meta().name.clone(),
        }
    }

    /// The whole object (metadata and spec) as JSON, for debug pages.
    pub fn to_json(&self) -> Value {
        let json = match self {
            IstioConfig::VirtualService(c) => serde_json::to_value(c),
            IstioConfig::DestinationRule(c) => serde_json::to_value(c),
            IstioConfig::ServiceEntry(c) => serde_json::to_value(c),
            IstioConfig::WorkloadEntry(c) => serde_json::to_value(c),
            IstioConfig::Sidecar(c) => serde_json::to_value(c),
            IstioConfig::Gateway(c) => serde_json::to_value(c),
        };
        json.unwrap_or(Value::Null)
    }
}

/// Why an object's content was refused: the field at fault, as a path into
/// the object (`spec.http[0].route`), and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}{message}", field.as_ref().map(|f| format!("{f}: ")).unwrap_or_default())]
pub struct SpecError {
    pub field: Option<String>,
    pub message: String,
}

impl From<ValidationErrors> for SpecError {
    /// The first problem is named as the field; the message lists all.
    fn from(errs: ValidationErrors) -> Self {
        let first = errs.0.first();
        let field = first.map(|e| e.field.clone());
        let message = if errs.0.len() == 1 {
            first.map(|e| e.message.clone()).unwrap_or_default()
        } else {
            format!("{} problems: {errs}", errs.0.len())
        };
        SpecError { field, message }
    }
}

/// Deserializes `value`, found at `prefix` in its object (empty: the object
/// itself), naming the path of the field that failed.
pub fn deserialize_at<T: DeserializeOwned>(value: Value, prefix: &str) -> Result<T, SpecError> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let inner = e.path().to_string();
        let field = match (prefix.is_empty(), inner == ".") {
            (true, _) => inner,
            (false, true) => prefix.to_string(),
            (false, false) => format!("{prefix}.{inner}"),
        };
        SpecError {
            field: Some(field),
            message: e.into_inner().to_string(),
        }
    })
}

/// An Istio object's spec, typed and then checked by `validate`.
fn typed<T: DeserializeOwned>(
    meta: ConfigMeta,
    spec: Value,
    validate: fn(&T) -> Result<(), ValidationErrors>,
) -> Result<Arc<Config<T>>, SpecError> {
    let spec: T = deserialize_at(spec, "spec")?;
    validate(&spec)?;
    Ok(Arc::new(Config { meta, spec }))
}

/// An Istio networking kind's row.
const fn istio(
    kind: ConfigKind,
    plural: &'static str,
    update: UpdateKind,
    decode: DecodeSpec,
) -> KindInfo {
    KindInfo {
        kind,
        group: ISTIO_NETWORKING,
        versions: ISTIO_VERSIONS,
        plural,
        cluster_scoped: false,
        update,
        decode: Decode::Istio(decode),
    }
}

/// A Kubernetes kind's row.
const fn platform(
    kind: ConfigKind,
    group: &'static str,
    plural: &'static str,
    cluster_scoped: bool,
    update: UpdateKind,
) -> KindInfo {
    KindInfo {
        kind,
        group,
        versions: &["v1"],
        plural,
        cluster_scoped,
        update,
        decode: Decode::Platform,
    }
}

/// The table, in [`ConfigKind`]'s order. The update kinds are Istio's: a
/// change to what selects workloads (a Namespace's labels) is a config
/// change, endpoints and what they are read from are endpoint changes.
pub const KINDS: &[KindInfo] = &[
    istio(
        ConfigKind::VirtualService,
        "virtualservices",
        UpdateKind::Config,
        |meta, spec| typed(meta, spec, validate_virtual_service).map(IstioConfig::VirtualService),
    ),
    istio(
        ConfigKind::DestinationRule,
        "destinationrules",
        UpdateKind::Config,
        |meta, spec| typed(meta, spec, validate_destination_rule).map(IstioConfig::DestinationRule),
    ),
    istio(
        ConfigKind::ServiceEntry,
        "serviceentries",
        UpdateKind::Svc,
        |meta, spec| typed(meta, spec, validate_service_entry).map(IstioConfig::ServiceEntry),
    ),
    istio(
        ConfigKind::WorkloadEntry,
        "workloadentries",
        UpdateKind::Eds,
        |meta, spec| typed(meta, spec, validate_workload_entry).map(IstioConfig::WorkloadEntry),
    ),
    istio(
        ConfigKind::Sidecar,
        "sidecars",
        UpdateKind::Config,
        |meta, spec| typed(meta, spec, validate_sidecar).map(IstioConfig::Sidecar),
    ),
    istio(
        ConfigKind::Gateway,
        "gateways",
        UpdateKind::Config,
        |meta, spec| typed(meta, spec, validate_gateway).map(IstioConfig::Gateway),
    ),
    platform(ConfigKind::Service, "", "services", false, UpdateKind::Svc),
    platform(
        ConfigKind::EndpointSlice,
        "discovery.k8s.io",
        "endpointslices",
        false,
        UpdateKind::Eds,
    ),
    platform(
        ConfigKind::Endpoints,
        "",
        "endpoints",
        false,
        UpdateKind::Eds,
    ),
    platform(ConfigKind::Pod, "", "pods", false, UpdateKind::Eds),
    platform(ConfigKind::Node, "", "nodes", true, UpdateKind::Eds),
    platform(
        ConfigKind::Namespace,
        "",
        "namespaces",
        true,
        UpdateKind::Config,
    ),
];

// Every kind has its row, at its own index.
const _: () = {
    assert!(
        KINDS.len() == ConfigKind::ALL.len(),
        "every ConfigKind needs its row in KINDS"
    );
    let mut i = 0;
    while i < KINDS.len() {
        assert!(
            KINDS[i].kind as usize == i,
            "KINDS must list the kinds in ConfigKind's order"
        );
        i += 1;
    }
};

impl ConfigKind {
    /// This kind's row.
    pub fn info(self) -> &'static KindInfo {
        // In range and in order: checked above when the crate compiles.
        &KINDS[self as usize]
    }
}

impl KindInfo {
    /// The `apiVersion` of an object of this kind at `version`.
    pub fn api_version(&self, version: &str) -> String {
        if self.group.is_empty() {
            version.to_string()
        } else {
            format!("{}/{version}", self.group)
        }
    }

    /// Whether an object written at `api_version` is of this kind's group
    /// and at a version it is read at.
    pub fn reads(&self, api_version: &str) -> bool {
        let (group, version) = split_api_version(api_version);
        group == self.group && self.versions.contains(&version)
    }

    pub fn is_istio(&self) -> bool {
        matches!(self.decode, Decode::Istio(_))
    }
}

/// `networking.istio.io/v1` → (`networking.istio.io`, `v1`); `v1` → (``, `v1`).
pub fn split_api_version(api_version: &str) -> (&str, &str) {
    api_version.split_once('/').unwrap_or(("", api_version))
}

/// The row of kind `kind` in the group of `api_version`, whatever the
/// version (the caller tells an unread version apart with
/// [`KindInfo::reads`]).
pub fn find(api_version: &str, kind: &str) -> Option<&'static KindInfo> {
    let (group, _) = split_api_version(api_version);
    KINDS
        .iter()
        .find(|k| k.group == group && k.kind.as_str() == kind)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_are_classified_as_istio_does() {
        assert_eq!(ConfigKind::EndpointSlice.info().update, UpdateKind::Eds);
        assert_eq!(ConfigKind::WorkloadEntry.info().update, UpdateKind::Eds);
        assert_eq!(ConfigKind::Service.info().update, UpdateKind::Svc);
        assert_eq!(ConfigKind::VirtualService.info().update, UpdateKind::Config);
    }

    #[test]
    fn each_row_is_found_by_its_api_version_and_name() {
        for row in KINDS {
            let api_version = row.api_version(row.versions[0]);
            let found = find(&api_version, row.kind.as_str()).expect("found");
            assert_eq!(found.kind, row.kind);
            assert!(found.reads(&api_version), "{api_version}");
        }
        assert!(find("v1", "ConfigMap").is_none());
        assert!(find("networking.istio.io/v1", "Service").is_none());
        let vs = find("networking.istio.io/v2", "VirtualService").expect("the kind");
        assert!(!vs.reads("networking.istio.io/v2"));
        assert!(vs.reads("networking.istio.io/v1alpha3"));
    }

    #[test]
    fn an_istio_row_decodes_and_validates_its_spec() {
        let meta = ConfigMeta {
            name: "r".into(),
            namespace: "shop".into(),
            ..Default::default()
        };
        let Decode::Istio(decode) = ConfigKind::VirtualService.info().decode else {
            panic!("an Istio kind");
        };
        let ok = decode(
            meta.clone(),
            serde_json::json!({"hosts": ["r"], "http": [{"route": [{"destination": {"host": "r"}}]}]}),
        )
        .expect("valid");
        assert_eq!(ok.key().to_string(), "VirtualService/shop/r");
        let typo = decode(
            meta.clone(),
            serde_json::json!({"hosts": ["r"], "htpp": []}),
        )
        .expect_err("unknown field");
        assert_eq!(typo.field.as_deref(), Some("spec.htpp"));
        let invalid = decode(meta, serde_json::json!({"hosts": []})).expect_err("invalid");
        assert_eq!(invalid.field.as_deref(), Some("spec.hosts"));
        assert_eq!(
            invalid.to_string(),
            "spec.hosts: 2 problems: spec.hosts: at least one host is required; spec.http: at least one http or tcp rule is required"
        );
    }
}
