use std::borrow::Borrow;
use std::fmt;

use serde::{Deserialize, Serialize};

/// A fully qualified service hostname such as `reviews.default.svc.cluster.local`.
///
/// A distinct type so a hostname is never confused with a cluster or route name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Hostname(String);

impl Hostname {
    pub fn new(name: impl Into<String>) -> Self {
        Hostname(name.into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Resolves a host as written in an Istio resource of `namespace`.
    ///
    /// As in Istio, a name without a dot is a short Kubernetes service name in
    /// the resource's own namespace; anything with a dot is taken as written.
    pub fn resolve(host: &str, namespace: &str, domain: &str) -> Hostname {
        if Self::is_written_whole(host) {
            Hostname(host.to_string())
        } else {
            Hostname(format!("{host}.{namespace}.svc.{domain}"))
        }
    }

    /// A name with a dot, or the wildcard, is taken as written.
    fn is_written_whole(host: &str) -> bool {
        host.contains('.') || host == "*"
    }

    /// [`Hostname::resolve`] without allocating where it can be helped:
    /// the name as written, or written out into `buffer`. For lookups, by
    /// way of `Borrow<str>`, in loops over every resource.
    pub fn resolve_in<'a>(
        host: &'a str,
        namespace: &str,
        domain: &str,
        buffer: &'a mut String,
    ) -> &'a str {
        if Self::is_written_whole(host) {
            return host;
        }
        buffer.clear();
        for part in [host, ".", namespace, ".svc.", domain] {
            buffer.push_str(part);
        }
        buffer
    }

    /// The Kubernetes-style short forms of this hostname, if it is
    /// `name.namespace.svc.<domain>`: `(name, namespace)`.
    pub fn kubernetes_parts(&self, domain: &str) -> Option<(&str, &str)> {
        let prefix = self.0.strip_suffix(domain)?.strip_suffix(".svc.")?;
        let (name, namespace) = prefix.split_once('.')?;
        if name.is_empty() || namespace.is_empty() || namespace.contains('.') {
            return None;
        }
        Some((name, namespace))
    }
}

/// Lookups by `&str` in maps keyed by `Hostname`: the two order, compare
/// and hash alike, as a `Hostname` is its `String`.
impl Borrow<str> for Hostname {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Hostname {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<&str> for Hostname {
    fn from(s: &str) -> Self {
        Hostname(s.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_names_resolve_in_the_resource_namespace() {
        assert_eq!(
            Hostname::resolve("reviews", "prod", "cluster.local").as_str(),
            "reviews.prod.svc.cluster.local"
        );
        assert_eq!(
            Hostname::resolve("api.example.com", "prod", "cluster.local").as_str(),
            "api.example.com"
        );
    }

    #[test]
    fn resolving_into_a_buffer_gives_the_same_names() {
        let mut buffer = String::from("left over");
        for host in ["reviews", "api.example.com", "*", "a"] {
            let resolved = Hostname::resolve(host, "prod", "cluster.local");
            let found = Hostname::resolve_in(host, "prod", "cluster.local", &mut buffer);
            assert_eq!(found, resolved.as_str());
            let map = std::collections::BTreeMap::from([(resolved, ())]);
            assert!(map.contains_key(found), "{host}: a &str finds its Hostname");
        }
    }

    #[test]
    fn kubernetes_parts() {
        let h = Hostname::new("reviews.default.svc.cluster.local");
        assert_eq!(
            h.kubernetes_parts("cluster.local"),
            Some(("reviews", "default"))
        );
        assert_eq!(
            Hostname::new("api.example.com").kubernetes_parts("cluster.local"),
            None
        );
        assert_eq!(
            Hostname::new("a.b.c.svc.cluster.local").kubernetes_parts("cluster.local"),
            None
        );
    }
}
