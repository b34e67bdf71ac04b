//! What a Gateway must satisfy beyond its type.

use std::collections::BTreeSet;
use std::net::IpAddr;

use super::Gateway;
use crate::service::Protocol;
use crate::validation::{check_port, check_wildcard_host, Errors, ValidationErrors};

pub fn validate_gateway(gw: &Gateway) -> Result<(), ValidationErrors> {
    let mut errs = Errors::default();
    if gw.servers.is_empty() {
        errs.add("spec.servers", "at least one server is required");
    }
    let mut bound = BTreeSet::new();
    for (s, server) in gw.servers.iter().enumerate() {
        let at = format!("spec.servers[{s}]");
        check_port(&mut errs, format!("{at}.port.number"), server.port.number);
        if !Protocol::parse(&server.port.protocol).is_http() {
            errs.add(
                format!("{at}.port.protocol"),
                format!(
                    "{:?} is not supported (HTTP, HTTP2 or GRPC; TLS servers are not implemented)",
                    server.port.protocol
                ),
            );
        }
        if !server.bind.is_empty() && server.bind.parse::<IpAddr>().is_err() {
            errs.add(
                format!("{at}.bind"),
                format!("{:?} is not an IP address", server.bind),
            );
        }
        if !bound.insert((server.bind.as_str(), server.port.number)) {
            errs.add(
                format!("{at}.port.number"),
                format!(
                    "port {} is already used by another server",
                    server.port.number
                ),
            );
        }
        if server.hosts.is_empty() {
            errs.add(format!("{at}.hosts"), "at least one host is required");
        }
        for (h, entry) in server.hosts.iter().enumerate() {
            let host = match entry.split_once('/') {
                Some((ns, host)) if !ns.is_empty() => host,
                Some(_) => "",
                None => entry.as_str(),
            };
            check_wildcard_host(&mut errs, &format!("{at}.hosts[{h}]"), host);
        }
    }
    errs.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::validation::testing::{fields, from_yaml};

    #[test]
    fn every_gateway_field_is_checked_and_named() {
        let gw: Gateway = from_yaml(
            r#"
servers:
- port: {number: 0, protocol: TLS}
  hosts: ["*.a.*"]
  bind: localhost
- port: {number: 80, protocol: HTTP}
  hosts: []
- port: {number: 80, protocol: http}
  hosts: ["/x", "ns/*"]
"#,
        );
        let err = validate_gateway(&gw).expect_err("invalid");
        assert_eq!(
            fields(&err),
            vec![
                "spec.servers[0].port.number",
                "spec.servers[0].port.protocol",
                "spec.servers[0].bind",
                "spec.servers[0].hosts[0]",
                "spec.servers[1].hosts",
                "spec.servers[2].port.number",
                "spec.servers[2].hosts[0]",
            ],
            "{err}"
        );
        let empty: Gateway = from_yaml("selector: {istio: ingressgateway}");
        assert_eq!(
            fields(&validate_gateway(&empty).expect_err("no servers")),
            vec!["spec.servers"]
        );
        let good: Gateway = from_yaml(
            r#"
selector: {istio: ingressgateway}
servers:
- port: {number: 8080, name: http, protocol: HTTP}
  hosts: ["*", "shop/*.example.com"]
  bind: 127.0.0.1
- port: {number: 8081, name: grpc, protocol: GRPC}
  hosts: [api.example.com]
"#,
        );
        assert_eq!(validate_gateway(&good), Ok(()));
    }
}
