//! Workload identity as SPIFFE names it:
//! `spiffe://<trust-domain>/ns/<namespace>/sa/<service-account>`, the URI
//! a workload certificate carries and the name policies match.

use std::fmt;
use std::str::FromStr;

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SpiffeId {
    pub trust_domain: String,
    pub namespace: String,
    pub service_account: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{uri:?} is not a workload identity (spiffe://<trust-domain>/ns/<namespace>/sa/<service-account>)")]
pub struct SpiffeIdError {
    pub uri: String,
}

impl fmt::Display for SpiffeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "spiffe://{}/ns/{}/sa/{}",
            self.trust_domain, self.namespace, self.service_account
        )
    }
}

impl FromStr for SpiffeId {
    type Err = SpiffeIdError;

    fn from_str(uri: &str) -> Result<Self, Self::Err> {
        let malformed = || SpiffeIdError {
            uri: uri.to_string(),
        };
        let rest = uri.strip_prefix("spiffe://").ok_or_else(malformed)?;
        let parts: Vec<&str> = rest.split('/').collect();
        match parts.as_slice() {
            [td, "ns", ns, "sa", sa] if !td.is_empty() && !ns.is_empty() && !sa.is_empty() => {
                Ok(SpiffeId {
                    trust_domain: td.to_string(),
                    namespace: ns.to_string(),
                    service_account: sa.to_string(),
                })
            }
            _ => Err(malformed()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints_the_same_uri() {
        let id: SpiffeId = "spiffe://cluster.local/ns/shop/sa/web".parse().expect("id");
        assert_eq!(id.namespace, "shop");
        assert_eq!(id.service_account, "web");
        assert_eq!(id.to_string(), "spiffe://cluster.local/ns/shop/sa/web");
    }

    #[test]
    fn anything_but_the_five_parts_is_refused() {
        for bad in [
            "spiffe://cluster.local/ns/shop",
            "spiffe://cluster.local/sa/web/ns/shop",
            "spiffe:///ns/shop/sa/web",
            "spiffe://td/ns//sa/web",
            "https://td/ns/a/sa/b",
        ] {
            assert_eq!(
                bad.parse::<SpiffeId>(),
                Err(SpiffeIdError { uri: bad.into() }),
                "{bad}"
            );
        }
    }
}
