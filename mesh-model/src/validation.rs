//! Semantic checks on Istio resources, beyond what their types enforce.
//! Each kind's own checks are beside its type (`istio/<kind>/validate.rs`);
//! here are the error types and the checks several kinds share.
//!
//! Each check reports every problem it finds, each naming its field as a path
//! into the resource (`spec.http[0].route[1].weight`), so one pass over a bad
//! file tells the operator everything that is wrong with it.

use std::fmt;

use crate::duration::IstioDuration;
use crate::istio::StringMatch;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ValidationErrors(pub Vec<FieldError>);

impl fmt::Display for ValidationErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self.0.iter().map(ToString::to_string).collect();
        f.write_str(&parts.join("; "))
    }
}

#[derive(Default)]
pub(crate) struct Errors(Vec<FieldError>);

impl Errors {
    pub(crate) fn add(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.0.push(FieldError {
            field: field.into(),
            message: message.into(),
        });
    }

    pub(crate) fn finish(self) -> Result<(), ValidationErrors> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(ValidationErrors(self.0))
        }
    }
}

pub(crate) fn check_string_match(errs: &mut Errors, field: &str, m: &StringMatch) {
    if let StringMatch::Regex(re) = m {
        check_regex(errs, field, re);
    }
}

pub(crate) fn check_regex(errs: &mut Errors, field: &str, re: &str) {
    if let Err(e) = regex::Regex::new(re) {
        // The regex crate's message spans several lines; keep the last,
        // which says what is wrong.
        let text = e.to_string();
        let last = text.lines().last().unwrap_or_default().trim().to_string();
        errs.add(field, format!("invalid regex {re:?}: {last}"));
    }
}

pub(crate) fn check_port(errs: &mut Errors, field: impl Into<String>, port: u32) {
    if port == 0 || port > u32::from(u16::MAX) {
        errs.add(field, format!("port {port} is out of range 1-65535"));
    }
}

pub(crate) fn check_at_least_ms(errs: &mut Errors, at: &str, d: IstioDuration) {
    if d.get() < std::time::Duration::from_millis(1) {
        errs.add(at, format!("{d} is shorter than 1ms"));
    }
}

pub(crate) fn check_non_negative(errs: &mut Errors, at: &str, v: Option<i32>) {
    if let Some(v) = v {
        if v < 0 {
            errs.add(at, format!("{v} must not be negative"));
        }
    }
}

pub(crate) fn check_wildcard_host(errs: &mut Errors, at: &str, host: &str) {
    let valid = host == "*"
        || host
            .strip_prefix("*.")
            .unwrap_or(host)
            .chars()
            .all(|c| c != '*');
    if !valid || host == "*." || host.is_empty() {
        errs.add(
            at,
            format!("{host:?}: a wildcard may only be a leading \"*\" or \"*.\""),
        );
    }
}

/// What the kinds' validation tests share.
#[cfg(test)]
pub(crate) mod testing {
    use super::ValidationErrors;

    /// A spec as the kinds read it: YAML into a JSON value, then typed.
    pub fn from_yaml<T: serde::de::DeserializeOwned>(yaml: &str) -> T {
        let v: serde_json::Value = crate::yaml::from_str(yaml).expect("yaml");
        serde_json::from_value(v).expect("parses")
    }

    /// The fields the errors name, in order.
    pub fn fields(err: &ValidationErrors) -> Vec<&str> {
        err.0.iter().map(|e| e.field.as_str()).collect()
    }
}
