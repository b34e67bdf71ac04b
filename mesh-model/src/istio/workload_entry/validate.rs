//! What a WorkloadEntry, or a ServiceEntry's inline endpoint, must satisfy.

use std::net::IpAddr;

use super::WorkloadEntry;
use crate::validation::{check_port, Errors, ValidationErrors};

pub(crate) fn check_workload(errs: &mut Errors, at: &str, we: &WorkloadEntry, need_ip: bool) {
    if we.address.is_empty() {
        errs.add(format!("{at}.address"), "address is required");
    } else if need_ip && we.address.parse::<IpAddr>().is_err() {
        errs.add(
            format!("{at}.address"),
            format!(
                "{:?} is not an IP address (STATIC resolution needs IPs)",
                we.address
            ),
        );
    }
    for (name, port) in &we.ports {
        check_port(errs, format!("{at}.ports.{name}"), *port);
    }
}

pub fn validate_workload_entry(we: &WorkloadEntry) -> Result<(), ValidationErrors> {
    let mut errs = Errors::default();
    check_workload(&mut errs, "spec", we, false);
    errs.finish()
}
