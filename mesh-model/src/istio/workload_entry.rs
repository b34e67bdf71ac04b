pub mod validate;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// A non-Kubernetes workload (a VM, a process): `WorkloadEntry.spec`, and the
/// shape of `ServiceEntry.spec.endpoints[]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WorkloadEntry {
    #[serde(default)]
    pub address: String,
    /// Service port name to the port this workload listens on.
    #[serde(default)]
    pub ports: BTreeMap<String, u32>,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub network: String,
    #[serde(default)]
    pub locality: String,
    #[serde(default)]
    pub weight: u32,
    #[serde(default)]
    pub service_account: String,
}
