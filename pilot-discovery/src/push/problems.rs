//! What building a snapshot found by looking at resources side by side
//! (conflicts, references to what does not exist): logged and counted once
//! when it first appears, listed in `/debug/configz` while it lasts.

use std::collections::{BTreeMap, BTreeSet};

use mesh_model::{ConfigKey, MeshSnapshot, Problem, Severity};
use serde::Serialize;

use crate::metrics::Metrics;
use crate::sources::SourceState;

/// One problem as `/debug/configz` lists it.
#[derive(Debug, Clone, Serialize)]
pub struct Listed {
    pub severity: Severity,
    pub file: String,
    pub error: String,
}

/// Logs and counts the problems of `new` that `old` did not have, and sets
/// the conflict gauge to what `new` holds. `listed` is [`listed`] of `new`.
pub fn report(
    old: Option<&MeshSnapshot>,
    new: &MeshSnapshot,
    listed: &[Listed],
    metrics: &Metrics,
) {
    let known: BTreeSet<&Problem> = old.map(|o| o.problems.iter().collect()).unwrap_or_default();
    for (p, Listed { error, .. }) in new.problems.iter().zip(listed) {
        if known.contains(p) {
            continue;
        }
        match p.severity {
            Severity::Rejected => {
                tracing::error!(resource = %p.resource, "invalid config: {error}");
                metrics.count_rejected(Some(p.resource.kind));
            }
            Severity::Conflict => {
                tracing::warn!(resource = %p.resource, "config conflict: {error}")
            }
            Severity::Warning => tracing::warn!(resource = %p.resource, "config problem: {error}"),
        }
    }
    let mut conflicts: BTreeMap<&str, i64> = BTreeMap::new();
    let in_conflict: BTreeSet<&ConfigKey> = new
        .problems
        .iter()
        .filter(|p| p.severity == Severity::Conflict)
        .map(|p| &p.resource)
        .collect();
    for key in in_conflict {
        *conflicts.entry(key.kind.as_str()).or_default() += 1;
    }
    metrics.config_conflicts.reset();
    for (kind, n) in conflicts {
        metrics.config_conflicts.with_label_values(&[kind]).set(n);
    }
}

/// The problems of `snap`, each naming the file of its resource.
pub fn listed(snap: &MeshSnapshot, states: &[impl AsRef<SourceState>]) -> Vec<Listed> {
    snap.problems
        .iter()
        .map(|p| {
            let file = states
                .iter()
                .find_map(|s| s.as_ref().file_of(&p.resource))
                .map_or_else(
                    || "<unknown source>".to_string(),
                    |f| f.display().to_string(),
                );
            Listed {
                severity: p.severity,
                error: format!("{file}: {p}"),
                file,
            }
        })
        .collect()
}
