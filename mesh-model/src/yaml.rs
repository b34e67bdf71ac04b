//! YAML as users write Kubernetes and Istio objects, read into JSON values
//! (the kinds decode from `serde_json::Value`). serde-saphyr parses it
//! within a budget: an alias bomb or a document nested past
//! [`MAX_DEPTH`] levels is refused, not expanded. Texts of up to
//! [`MAX_TEXT`] bytes parse whatever their size otherwise: thousands of
//! documents in one file, or a `List` of thousands of items.
//!
//! Plain scalars keep the meanings they had when these files were read with
//! `serde_yaml` 0.9 (YAML 1.2's core schema): `yes`, `no`, `on` and `off`
//! are strings, not booleans, and so are numbers written with leading zeros
//! or underscores.

use serde::de::DeserializeOwned;
use serde_json::Value;

/// Nesting deeper than this is refused. Istio and Kubernetes objects nest a
/// dozen levels at most.
pub const MAX_DEPTH: usize = 64;

/// The longest text whose size alone never breaches the budget: a text
/// cannot hold more documents, nodes or scalar bytes than it has bytes, nor
/// more than three parser events a byte. (The config folder reads files of
/// at most 16 MiB.)
pub const MAX_TEXT: usize = 64 << 20;

/// Events replayed from aliases, in all: what stops an alias bomb. Istio
/// YAML rarely uses anchors; a billion laughs needs billions.
const MAX_REPLAYED_EVENTS: usize = 1_000_000;

/// Why a text is not YAML, in one line, with where in the text.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct YamlError(String);

impl From<serde_saphyr::Error> for YamlError {
    fn from(e: serde_saphyr::Error) -> Self {
        let text = e.to_string();
        let line = text.lines().map(str::trim).collect::<Vec<_>>().join(" ");
        // The parser's advice is for programmers, not for whoever wrote the
        // file.
        YamlError(line.replace(", set DuplicateKeyPolicy in Options if acceptable", ""))
    }
}

fn options() -> serde_saphyr::Options {
    let mut budget = serde_saphyr::Budget::default();
    budget.max_depth = MAX_DEPTH;
    budget.max_documents = MAX_TEXT;
    budget.max_nodes = MAX_TEXT;
    budget.max_events = 3 * MAX_TEXT;
    budget.max_total_scalar_bytes = MAX_TEXT;
    // Many aliases of one anchor are fine (serde_yaml took them); their
    // replayed events are what is bounded.
    budget.enforce_alias_anchor_ratio = false;
    let mut alias_limits = serde_saphyr::options::AliasLimits::default();
    alias_limits.max_total_replayed_events = MAX_REPLAYED_EVENTS;
    serde_saphyr::options! {
        budget: Some(budget),
        alias_limits: alias_limits,
        strict_booleans: true,
        leading_zero_numbers_as_strings: true,
        underscored_numbers_as_strings: true,
        with_snippet: false,
        // Comments are never read; capturing them costs the parse and
        // leaves the heap fragmented for what is allocated after it
        // (route generation measured 25 % slower in make bench's S4).
        emit_comments: false,
    }
}

/// Every document of `text` that holds something, in order; documents that
/// are empty (or only comments) are left out.
pub fn documents(text: &str) -> Result<Vec<Value>, YamlError> {
    Ok(serde_saphyr::from_multiple_with_options(text, options())?)
}

/// One document of `text` as a `T`.
pub fn from_str<T: DeserializeOwned>(text: &str) -> Result<T, YamlError> {
    Ok(serde_saphyr::from_str_with_options(text, options())?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documents_are_json_values_and_empty_ones_are_left_out() {
        let docs = documents("a: 1\n---\n# only a comment\n---\nb: [x, 2.5, true, null]\n---\n")
            .expect("valid");
        assert_eq!(
            docs,
            [
                serde_json::json!({"a": 1}),
                serde_json::json!({"b": ["x", 2.5, true, null]})
            ]
        );
    }

    #[test]
    fn scalars_keep_their_yaml_1_2_meaning() {
        let v: Value =
            from_str("a: yes\nb: on\nc: 0755\nd: 1_000\ne: True\nf: '08'\n").expect("valid");
        assert_eq!(
            v,
            serde_json::json!({"a": "yes", "b": "on", "c": "0755", "d": "1_000", "e": true, "f": "08"})
        );
    }

    #[test]
    fn an_alias_bomb_is_refused_not_expanded() {
        // Each level refers to the one before nine times: 9^9 strings if
        // expanded.
        let mut text = String::from("l0: &l0 [x, x, x, x, x, x, x, x, x]\n");
        for i in 1..=9 {
            let refs = vec![format!("*l{}", i - 1); 9].join(", ");
            text.push_str(&format!("l{i}: &l{i} [{refs}]\n"));
        }
        let e = documents(&text).expect_err("refused");
        assert!(!e.to_string().contains('\n'), "one line: {e}");
        assert!(e.to_string().contains("budget breached"), "{e}");
    }

    #[test]
    fn a_large_file_of_many_documents_parses() {
        // As the snapshot benchmark's mesh: 13,000 small documents, some
        // 300,000 nodes, past serde-saphyr's default budget.
        let mut text = String::new();
        for i in 0..13_000 {
            text.push_str(&format!(
                "---\napiVersion: networking.istio.io/v1\nkind: WorkloadEntry\n\
                 metadata: {{name: w-{i}, namespace: ns-{}}}\n\
                 spec: {{address: 10.0.{}.{}, ports: {{http: 8080}}, labels: {{app: a-{i}, version: v1}}}}\n",
                i % 10,
                i / 250,
                i % 250
            ));
        }
        assert_eq!(documents(&text).expect("parses").len(), 13_000);
        // One anchor, many aliases.
        let many = format!(
            "base: &b {{a: 1}}\nuses: [{}]\n",
            vec!["*b"; 500].join(", ")
        );
        assert!(documents(&many).is_ok());
    }

    #[test]
    fn nesting_past_the_limit_is_refused() {
        let ok = format!(
            "{}x{}",
            "[".repeat(MAX_DEPTH - 1),
            "]".repeat(MAX_DEPTH - 1)
        );
        assert!(documents(&ok).is_ok());
        let deep = format!("{}x{}", "[".repeat(10_000), "]".repeat(10_000));
        let e = documents(&deep).expect_err("too deep");
        assert!(!e.to_string().contains('\n'), "one line: {e}");
        let mut block = String::new();
        for i in 0..200 {
            block.push_str(&format!("{}k{i}:\n", " ".repeat(i)));
        }
        assert!(documents(&block).is_err(), "nested block mappings too");
    }

    #[test]
    fn a_syntax_error_says_where() {
        let e = documents("a: [unclosed\n").expect_err("invalid");
        assert!(e.to_string().contains("line"), "{e}");
        let dup = documents("a: 1\na: 2\n").expect_err("duplicate key");
        assert_eq!(
            dup.to_string(),
            "duplicate mapping key: a at line 2, column 1"
        );
    }
}
