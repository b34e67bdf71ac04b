//! One generated resource, named as the proxy knows it, with its digest.

use std::sync::Arc;

use xds_proto::protobuf::Any;

use crate::xds::digest::{digest, mix};
use crate::xds::intern::intern;

/// One generated resource with the name the proxy knows it by.
#[derive(Debug, Clone)]
pub struct Named {
    /// Shared with every delta stream that records holding the resource.
    pub name: Arc<str>,
    pub resource: Any,
    /// Changes exactly when the encoded resource does; computed once, since
    /// one resource is often sent to many proxies.
    pub digest: u64,
}

impl Named {
    pub fn new(name: &str, resource: Any) -> Self {
        let digest = digest(&resource.value);
        Named {
            name: intern(name),
            resource,
            digest,
        }
    }

    /// The resource's version: a proxy reconnecting to another replica (or
    /// after a restart) is not sent what it already has.
    pub fn version(&self) -> String {
        format!("{:016x}", self.digest)
    }
}

/// The digest of a set of resources, from each one's digest: the same
/// whatever the order, and cheap to update by one resource.
pub fn set_digest<'a>(resources: impl IntoIterator<Item = &'a Arc<Named>>) -> u64 {
    resources
        .into_iter()
        .fold(0, |acc, r| acc.wrapping_add(1).wrapping_add(mix(r.digest)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_follow_content() {
        let any = |value: Vec<u8>| Any {
            type_url: "t".into(),
            value,
        };
        let a = Named::new("x", any(vec![1, 2, 3]));
        let b = Named::new("x", any(vec![1, 2, 3]));
        assert_eq!(a.version(), b.version());
        let c = Named::new("x", any(vec![1, 2, 3, 4]));
        assert_ne!(a.version(), c.version());
        assert_eq!(a.version().len(), 16);
    }
}
