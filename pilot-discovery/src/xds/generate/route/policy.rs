//! Per-route policies of a VirtualService rule: retries, faults, mirroring,
//! CORS and header edits, as Istio translates them.

use std::collections::HashMap;
use std::time::Duration;

use mesh_model::istio::virtual_service::{
    CorsPolicy as IstioCors, HeaderOperations, HttpFaultInjection, HttpRetry, Percent,
};
use xds_proto::pb::envoy::config::core::v3::{
    header_value_option::HeaderAppendAction, HeaderValue, HeaderValueOption,
    RuntimeFractionalPercent,
};
use xds_proto::pb::envoy::config::route::v3::{
    retry_policy::{retry_host_predicate, RetryHostPredicate},
    RetryPolicy,
};
use xds_proto::pb::envoy::extensions::filters::common::fault::v3::{
    fault_delay::FaultDelaySecifier, FaultDelay,
};
use xds_proto::pb::envoy::extensions::filters::http::cors::v3::CorsPolicy;
use xds_proto::pb::envoy::extensions::filters::http::fault::v3::{
    fault_abort::ErrorType, FaultAbort, HttpFault,
};
use xds_proto::pb::envoy::extensions::retry::host::previous_hosts::v3::PreviousHostsPredicate;
use xds_proto::pb::envoy::r#type::v3::{fractional_percent::DenominatorType, FractionalPercent};
use xds_proto::protobuf::{Any, BoolValue, UInt32Value};

use super::matching::string_matcher;
use crate::xds::generate::common::duration;
use crate::xds::generate::listener::{CORS_FILTER, FAULT_FILTER};

/// Istio's retry conditions when a rule sets none.
const DEFAULT_RETRY_ON: &str =
    "connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes";
const DEFAULT_RETRIABLE_CODES: &[u32] = &[503];
const DEFAULT_ATTEMPTS: u32 = 2;
const PREVIOUS_HOSTS: &str = "envoy.retry_host_predicates.previous_hosts";

/// The retry policy of a rule: Istio's default when `retries` is absent,
/// none when it asks for 0 attempts.
pub fn retry_policy(retries: Option<&HttpRetry>) -> Option<RetryPolicy> {
    // Most routes carry the default; build it once.
    static DEFAULT: std::sync::OnceLock<RetryPolicy> = std::sync::OnceLock::new();
    let (attempts, retry_on, codes, per_try) = match retries {
        None => {
            return Some(
                DEFAULT
                    .get_or_init(|| {
                        build_retry_policy(
                            DEFAULT_ATTEMPTS,
                            DEFAULT_RETRY_ON.to_string(),
                            DEFAULT_RETRIABLE_CODES.to_vec(),
                            None,
                        )
                    })
                    .clone(),
            )
        }
        Some(r) if r.attempts <= 0 => return None,
        Some(r) => {
            let (on, codes) = if r.retry_on.is_empty() {
                (
                    DEFAULT_RETRY_ON.to_string(),
                    DEFAULT_RETRIABLE_CODES.to_vec(),
                )
            } else {
                parse_retry_on(&r.retry_on)
            };
            (
                u32::try_from(r.attempts).unwrap_or(0),
                on,
                codes,
                r.per_try_timeout.map(|d| duration(d.get())),
            )
        }
    };
    Some(build_retry_policy(attempts, retry_on, codes, per_try))
}

fn build_retry_policy(
    attempts: u32,
    retry_on: String,
    codes: Vec<u32>,
    per_try: Option<xds_proto::protobuf::Duration>,
) -> RetryPolicy {
    RetryPolicy {
        retry_on,
        num_retries: Some(UInt32Value { value: attempts }),
        per_try_timeout: per_try,
        retriable_status_codes: codes,
        // A retry goes to another endpoint when there is one.
        retry_host_predicate: vec![RetryHostPredicate {
            name: PREVIOUS_HOSTS.to_string(),
            config_type: Some(retry_host_predicate::ConfigType::TypedConfig(
                xds_proto::pack(&PreviousHostsPredicate {}),
            )),
        }],
        host_selection_retry_max_attempts: 5,
        ..Default::default()
    }
}

/// Splits `retryOn` into Envoy's conditions and status codes; codes turn on
/// `retriable-status-codes`.
fn parse_retry_on(text: &str) -> (String, Vec<u32>) {
    let mut conditions: Vec<&str> = Vec::new();
    let mut codes = Vec::new();
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        match part.parse::<u32>() {
            Ok(code) => codes.push(code),
            Err(_) => conditions.push(part),
        }
    }
    if !codes.is_empty() && !conditions.contains(&"retriable-status-codes") {
        conditions.push("retriable-status-codes");
    }
    (conditions.join(","), codes)
}

/// Istio's percentages have fractions; Envoy's finest unit is a millionth.
pub fn fraction(p: Option<Percent>, absent: f64) -> FractionalPercent {
    let value = p.map_or(absent, |p| p.value).clamp(0.0, 100.0);
    // In range by the clamp above, so the cast cannot truncate.
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let numerator = (value * 10_000.0).round() as u32;
    FractionalPercent {
        numerator,
        denominator: DenominatorType::Million as i32,
    }
}

pub fn runtime_fraction(p: Option<Percent>, absent: f64) -> RuntimeFractionalPercent {
    RuntimeFractionalPercent {
        default_value: Some(fraction(p, absent)),
        runtime_key: String::new(),
    }
}

/// The fault filter's per-route config. A fault with no percentage applies
/// to no request, as in Istio.
pub fn fault(f: &HttpFaultInjection) -> HttpFault {
    HttpFault {
        delay: f.delay.as_ref().map(|d| FaultDelay {
            fault_delay_secifier: Some(FaultDelaySecifier::FixedDelay(duration(
                d.fixed_delay.map_or(Duration::ZERO, |t| t.get()),
            ))),
            percentage: Some(fraction(d.percentage, 0.0)),
        }),
        abort: f.abort.as_ref().map(|a| FaultAbort {
            error_type: Some(ErrorType::HttpStatus(a.http_status)),
            percentage: Some(fraction(a.percentage, 0.0)),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The CORS filter's per-route config.
pub fn cors(c: &IstioCors) -> CorsPolicy {
    CorsPolicy {
        allow_origin_string_match: c.allow_origins.iter().map(string_matcher).collect(),
        allow_methods: c.allow_methods.join(","),
        allow_headers: c.allow_headers.join(","),
        expose_headers: c.expose_headers.join(","),
        max_age: c
            .max_age
            .map(|d| d.get().as_secs().to_string())
            .unwrap_or_default(),
        allow_credentials: c.allow_credentials.map(|value| BoolValue { value }),
        ..Default::default()
    }
}

/// Header edits of one direction: (headers to add, names to remove).
pub fn header_edits(ops: Option<&HeaderOperations>) -> (Vec<HeaderValueOption>, Vec<String>) {
    let Some(ops) = ops else {
        return (Vec::new(), Vec::new());
    };
    let option = |(key, value): (&String, &String), action: HeaderAppendAction| HeaderValueOption {
        header: Some(HeaderValue {
            key: key.clone(),
            value: value.clone(),
            ..Default::default()
        }),
        append_action: action as i32,
        ..Default::default()
    };
    let mut add: Vec<HeaderValueOption> = ops
        .set
        .iter()
        .map(|kv| option(kv, HeaderAppendAction::OverwriteIfExistsOrAdd))
        .collect();
    add.extend(
        ops.add
            .iter()
            .map(|kv| option(kv, HeaderAppendAction::AppendIfExistsOrAdd)),
    );
    (add, ops.remove.clone())
}

/// Typed per-filter config of one route, by filter name.
pub fn per_filter_config(
    fault_config: Option<HttpFault>,
    cors_config: Option<CorsPolicy>,
) -> HashMap<String, Any> {
    let mut out = HashMap::new();
    if let Some(f) = fault_config {
        out.insert(FAULT_FILTER.to_string(), xds_proto::pack(&f));
    }
    if let Some(c) = cors_config {
        out.insert(CORS_FILTER.to_string(), xds_proto::pack(&c));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn istio_default_retries_unless_told_otherwise() {
        let default = retry_policy(None).expect("default policy");
        assert_eq!(default.num_retries.map(|n| n.value), Some(2));
        assert_eq!(default.retriable_status_codes, vec![503]);
        assert!(retry_policy(Some(&HttpRetry::default())).is_none());
        let custom = retry_policy(Some(&HttpRetry {
            attempts: 3,
            retry_on: "gateway-error,503,429".into(),
            ..Default::default()
        }))
        .expect("custom");
        assert_eq!(
            custom.retry_on,
            "gateway-error,retriable-status-codes".to_string()
        );
        assert_eq!(custom.retriable_status_codes, vec![503, 429]);
        assert_eq!(custom.num_retries.map(|n| n.value), Some(3));
    }

    #[test]
    fn percentages_keep_their_fraction() {
        assert_eq!(fraction(Some(Percent { value: 0.1 }), 0.0).numerator, 1_000);
        assert_eq!(fraction(None, 100.0).numerator, 1_000_000);
        assert_eq!(fraction(None, 0.0).numerator, 0);
    }
}
