//! Kubernetes-style label selection, as subsets, workload selectors,
//! Sidecars and Gateways all use it.

use std::collections::BTreeMap;

/// True when every label of `selector` is in `labels` with the same value;
/// an empty selector selects everything.
pub fn selects(selector: &BTreeMap<String, String>, labels: &BTreeMap<String, String>) -> bool {
    selector.iter().all(|(k, v)| labels.get(k) == Some(v))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_selector_label_must_match() {
        let map = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        let labels = map(&[("app", "web"), ("version", "v1")]);
        assert!(selects(&map(&[]), &labels));
        assert!(selects(&map(&[("app", "web")]), &labels));
        assert!(!selects(
            &map(&[("app", "web"), ("version", "v2")]),
            &labels
        ));
        assert!(!selects(&map(&[("tier", "edge")]), &labels));
    }
}
