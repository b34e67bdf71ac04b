//! Kubernetes label selectors in the string form `kubectl -l` takes
//! (`env=prod,tier!=test,team in (a,b),!legacy`). Discovery selectors are
//! given this way on the command line to pick the namespaces the Kubernetes
//! registry reads, as Istio's `meshConfig.discoverySelectors` do.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::str::FromStr;

/// Every requirement must hold; no requirement selects everything.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabelSelector {
    requirements: Vec<Requirement>,
    /// As given, for logs and errors.
    text: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Requirement {
    Equals(String, String),
    /// Also holds when the label is absent, as in Kubernetes.
    NotEquals(String, String),
    In(String, BTreeSet<String>),
    /// Also holds when the label is absent, as in Kubernetes.
    NotIn(String, BTreeSet<String>),
    Exists(String),
    DoesNotExist(String),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid label selector {selector:?}: {message}")]
pub struct SelectorError {
    selector: String,
    message: String,
}

impl LabelSelector {
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.requirements.iter().all(|r| match r {
            Requirement::Equals(k, v) => labels.get(k) == Some(v),
            Requirement::NotEquals(k, v) => labels.get(k) != Some(v),
            Requirement::In(k, vs) => labels.get(k).is_some_and(|v| vs.contains(v)),
            Requirement::NotIn(k, vs) => labels.get(k).is_none_or(|v| !vs.contains(v)),
            Requirement::Exists(k) => labels.contains_key(k),
            Requirement::DoesNotExist(k) => !labels.contains_key(k),
        })
    }
}

impl fmt::Display for LabelSelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl FromStr for LabelSelector {
    type Err = SelectorError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let error = |message: String| SelectorError {
            selector: s.to_string(),
            message,
        };
        let requirements = if s.trim().is_empty() {
            Vec::new()
        } else {
            terms(s)
                .map_err(error)?
                .into_iter()
                .map(|t| requirement(t.trim()).map_err(error))
                .collect::<Result<_, _>>()?
        };
        Ok(LabelSelector {
            requirements,
            text: s.to_string(),
        })
    }
}

/// Splits at the commas that separate requirements, not those inside a
/// set's parentheses.
fn terms(s: &str) -> Result<Vec<&str>, String> {
    let mut out = Vec::new();
    let (mut depth, mut start) = (0u32, 0);
    for (i, c) in s.char_indices() {
        match c {
            '(' if depth == 0 => depth = 1,
            '(' => return Err("nested parentheses".into()),
            ')' if depth == 1 => depth = 0,
            ')' => return Err("unbalanced ')'".into()),
            ',' if depth == 0 => {
                out.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    if depth != 0 {
        return Err("unclosed '('".into());
    }
    out.push(&s[start..]);
    Ok(out)
}

fn requirement(term: &str) -> Result<Requirement, String> {
    if term.is_empty() {
        return Err("empty requirement".into());
    }
    if let Some(key) = term.strip_prefix('!') {
        return Ok(Requirement::DoesNotExist(key_of(key.trim())?));
    }
    if let Some((head, rest)) = term.split_once('(') {
        let values = rest
            .strip_suffix(')')
            .ok_or_else(|| format!("{term:?}: text after ')'"))?;
        let values: BTreeSet<String> = values
            .split(',')
            .map(|v| value_of(v.trim()))
            .collect::<Result<_, _>>()?;
        let mut words = head.split_whitespace();
        let (key, op) = (words.next(), words.next());
        if words.next().is_some() {
            return Err(format!("{term:?}: expected `key in (values)`"));
        }
        let key = key_of(key.unwrap_or_default())?;
        return match op {
            Some("in") => Ok(Requirement::In(key, values)),
            Some("notin") => Ok(Requirement::NotIn(key, values)),
            _ => Err(format!("{term:?}: the operator must be `in` or `notin`")),
        };
    }
    if let Some((k, v)) = term.split_once("!=") {
        return Ok(Requirement::NotEquals(
            key_of(k.trim())?,
            value_of(v.trim())?,
        ));
    }
    if let Some((k, v)) = term.split_once("==").or_else(|| term.split_once('=')) {
        return Ok(Requirement::Equals(key_of(k.trim())?, value_of(v.trim())?));
    }
    Ok(Requirement::Exists(key_of(term)?))
}

/// A label key: an optional DNS prefix and `/`, then a name.
fn key_of(key: &str) -> Result<String, String> {
    let name = key.rsplit_once('/').map_or(key, |(_, n)| n);
    if name.is_empty() {
        return Err(format!("{key:?}: a label key needs a name"));
    }
    if let Some(c) = key
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || "-_./".contains(*c)))
    {
        return Err(format!("{key:?}: {c:?} cannot be part of a label key"));
    }
    Ok(key.to_string())
}

/// A label value: may be empty.
fn value_of(value: &str) -> Result<String, String> {
    if let Some(c) = value
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || "-_.".contains(*c)))
    {
        return Err(format!("{value:?}: {c:?} cannot be part of a label value"));
    }
    if value.len() > 63 {
        return Err(format!("{value:?}: longer than 63 characters"));
    }
    Ok(value.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn sel(s: &str) -> LabelSelector {
        s.parse().unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn every_operator_matches_as_kubernetes_does() {
        let prod = labels(&[("env", "prod"), ("team", "a"), ("istio.io/rev", "1-20")]);
        let bare = labels(&[]);
        for (selector, on_prod, on_bare) in [
            ("", true, true),
            ("env=prod", true, false),
            ("env==prod", true, false),
            ("env!=prod", false, true),
            ("env", true, false),
            ("!env", false, true),
            ("team in (a, b)", true, false),
            ("team notin (a,b)", false, true),
            ("istio.io/rev=1-20", true, false),
            ("env=prod, team in (b,c)", false, false),
            ("env=prod,team in (a,c),!legacy", true, false),
        ] {
            let s = sel(selector);
            assert_eq!(s.matches(&prod), on_prod, "{selector:?} on prod");
            assert_eq!(s.matches(&bare), on_bare, "{selector:?} on no labels");
            assert_eq!(s.to_string(), selector);
        }
    }

    #[test]
    fn malformed_selectors_say_what_is_wrong() {
        for (selector, says) in [
            ("env=prod,,team", "empty requirement"),
            ("team in (a,b", "unclosed '('"),
            ("team in ((a))", "nested parentheses"),
            ("team within (a)", "`in` or `notin`"),
            ("env=pr od", "' ' cannot be part of a label value"),
            ("en v", "' ' cannot be part of a label key"),
            ("=prod", "a label key needs a name"),
        ] {
            let e = selector.parse::<LabelSelector>().expect_err(selector);
            let text = e.to_string();
            assert!(
                text.contains(says) && text.contains(&format!("{selector:?}")),
                "{selector:?}: {text}"
            );
        }
    }
}
