//! What the server knows about one ADS stream: the proxy on the other end and,
//! per resource type, what it subscribed to, was sent and acknowledged.
//! Shared by the state-of-the-world and delta protocols.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use serde::Serialize;
use tonic::Status;
use xds_proto::pb::envoy::config::core::v3::Node;

use mesh_model::SpiffeId;

use super::held::Held;
use crate::push::PushScope;
use crate::xds::context::PushContext;
use crate::xds::generate::generator::Generator;
use crate::xds::generate::generators::{generator, GENERATORS};
use crate::xds::generate::proxy::Proxy;
use crate::xds::intern::Names;

/// The most resource bytes one response carries by default; a bigger
/// change goes in several responses (`ConnState::part_bytes`). Each part is
/// a round of response and ACK, and a proxy subscribes to the endpoints of
/// the clusters of each part as it arrives: at 64 KiB, a proxy of a
/// 1,000-service mesh learnt its clusters in about fifteen rounds and its
/// endpoint subscription grew in as many steps, which took a third of the
/// server's CPU in a connect storm. A response is written out a chunk at a
/// time (`xds/server/grpc.rs`), so its size no longer decides the memory it holds;
/// the cap stays for the proxy's sake, well under the 4 MiB gRPC clients
/// commonly accept by default.
pub const PART_BYTES: usize = 1024 * 1024;

/// What a push sends for one type: everything subscribed, or only these
/// (never empty) names.
pub type PushTarget = Option<BTreeSet<Arc<str>>>;

/// One resource type on one stream.
#[derive(Debug, Default, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Watch {
    /// Subscribed to every resource of the type.
    pub wildcard: bool,
    /// Resources subscribed to by name (EDS, RDS, and delta subscriptions):
    /// thousands per stream, shared with the streams that subscribe alike.
    pub names: Names,
    pub nonce_sent: String,
    pub version_sent: String,
    pub nonce_acked: String,
    /// The message of the last NACK, cleared by the next ACK.
    pub last_nack: Option<String>,
    /// Answer the next request even if it looks like an ACK: Envoy re-asks
    /// for endpoints while warming clusters and waits for the answer.
    #[serde(skip)]
    pub always_respond: bool,
    /// State of the world only: a digest of the last response sent, to leave
    /// out pushes that would send the same again.
    #[serde(skip)]
    pub sent_digest: Option<u64>,
    /// Delta only: the digest (version) of each resource the proxy holds.
    /// Thousands per stream, so the names are shared with the generated
    /// resources and the versions kept as numbers.
    #[serde(skip)]
    pub client_has: Held,
    /// Delta only: the nonces of the earlier parts of the last response,
    /// when it was sent in parts (`nonce_sent` is the last part's). A NACK
    /// of any part counts; an ACK counts once the last part's arrives.
    #[serde(skip)]
    pub earlier_parts: Vec<String>,
}

#[derive(Debug)]
pub struct ConnState {
    pub proxy: Option<Arc<Proxy>>,
    /// The identity the client's TLS certificate proves, if any: the proxy
    /// may only present itself as one of that namespace.
    pub peer_identity: Option<SpiffeId>,
    pub watches: BTreeMap<String, Watch>,
    nonces: u64,
    /// The most resource bytes in one delta response ([`PART_BYTES`] by default).
    pub part_bytes: usize,
}

impl Default for ConnState {
    fn default() -> Self {
        ConnState {
            proxy: None,
            peer_identity: None,
            watches: BTreeMap::new(),
            nonces: 0,
            part_bytes: PART_BYTES,
        }
    }
}

impl ConnState {
    /// A new stream's state, sending delta changes in parts of at most
    /// `part_bytes` of resources.
    pub fn with_part_bytes(part_bytes: usize) -> Self {
        ConnState {
            part_bytes,
            ..ConnState::default()
        }
    }

    /// Reads the proxy's identity from the first request of the stream.
    /// Later requests may omit the node.
    pub fn identify(&mut self, node: Option<&Node>) -> Result<&Arc<Proxy>, Status> {
        if self.proxy.is_none() {
            let node = node.filter(|n| !n.id.is_empty()).ok_or_else(|| {
                Status::invalid_argument("the first request must carry a node with an id")
            })?;
            let proxy = Proxy::from_node(node)
                .map_err(|e| Status::invalid_argument(format!("invalid node id: {e}")))?;
            if let Some(id) = &self.peer_identity {
                authorize(id, &proxy)?;
            }
            tracing::info!(node = %proxy.node_id, "proxy connected");
            self.proxy = Some(Arc::new(proxy));
        }
        self.proxy
            .as_ref()
            .ok_or_else(|| Status::internal("proxy identity lost"))
    }

    /// The row of type `t` if this server serves it; a request for any
    /// other type is ignored, and logged.
    pub fn served(&self, t: &str) -> Option<&'static Generator> {
        let served = generator(t).map(|(_, g)| g);
        if served.is_none() {
            tracing::warn!(
                node = self.node_id(),
                type_url = t,
                "request for an unsupported type ignored"
            );
        }
        served
    }

    pub fn node_id(&self) -> &str {
        self.proxy.as_ref().map_or("", |p| p.node_id.as_str())
    }

    /// A nonce unique on this stream, readable in logs.
    pub fn next_nonce(&mut self, version: u64) -> String {
        self.nonces += 1;
        format!("{version}-{}", self.nonces)
    }

    /// After a proxy (re)subscribes to clusters, its next endpoint request
    /// must be answered for the new clusters to finish warming.
    pub fn mark_warming_dependents(&mut self, type_url: &str) {
        if type_url == xds_proto::type_url::CLUSTER {
            if let Some(w) = self.watches.get_mut(xds_proto::type_url::ENDPOINT) {
                w.always_respond = true;
            }
        }
    }

    /// The types a push of `scope` touches on this stream, in push order,
    /// each with what to send. Types with nothing in scope are left out.
    pub fn push_plan(
        &self,
        scope: &Arc<PushScope>,
        snap: &PushContext,
    ) -> Vec<(&'static str, PushTarget)> {
        let full = match &self.proxy {
            Some(p) => scope.is_full_for(&p.id.id),
            None => scope.is_full(),
        };
        GENERATORS
            .iter()
            .map(|g| g.type_url)
            .filter(|t| self.watches.contains_key(*t))
            .filter_map(|t| {
                if full {
                    return Some((t, None));
                }
                // A type partial pushes do not send is left out.
                let touched = snap.scope_names(scope, t)?;
                let subscribed = &self.watches[t].names;
                let names: BTreeSet<Arc<str>> = touched
                    .iter()
                    .filter_map(|n| subscribed.get(n.as_str()).cloned())
                    .collect();
                (!names.is_empty()).then_some((t, Some(names)))
            })
            .collect()
    }
}

/// Refuses a proxy presenting itself in a namespace its certificate does
/// not name, by its node id or by its metadata.
fn authorize(id: &SpiffeId, proxy: &Proxy) -> Result<(), Status> {
    for claimed in [proxy.id.namespace(), proxy.namespace()] {
        if claimed != id.namespace {
            tracing::warn!(
                node = %proxy.node_id,
                identity = %id,
                namespace = claimed,
                "refusing a proxy whose certificate names another namespace"
            );
            return Err(Status::permission_denied(format!(
                "certificate identity {id} may not ask for config of namespace {claimed:?}"
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::xds::generate::proxy::tests::local_node;

    #[test]
    fn a_certificate_binds_the_proxy_to_its_namespace() {
        let id: SpiffeId = "spiffe://cluster.local/ns/shop/sa/web".parse().expect("id");
        let mut state = ConnState {
            peer_identity: Some(id.clone()),
            ..ConnState::default()
        };
        let other = local_node("sidecar~10.0.0.1~web-1.bank~bank.svc.cluster.local");
        let err = state.identify(Some(&other)).expect_err("another namespace");
        assert_eq!(err.code(), tonic::Code::PermissionDenied);
        assert!(err.message().contains("\"bank\""), "{}", err.message());
        assert!(state.proxy.is_none());

        let own = local_node("sidecar~10.0.0.1~web-1.shop~shop.svc.cluster.local");
        assert!(state.identify(Some(&own)).is_ok());

        // Metadata claiming another namespace is refused too.
        let mut state = ConnState {
            peer_identity: Some(id),
            ..ConnState::default()
        };
        let mut lying = local_node("sidecar~10.0.0.1~web-1.shop~shop.svc.cluster.local");
        lying.metadata.as_mut().expect("metadata").fields.insert(
            "NAMESPACE".into(),
            xds_proto::protobuf::Value {
                kind: Some(xds_proto::protobuf::value::Kind::StringValue("bank".into())),
            },
        );
        let err = state.identify(Some(&lying)).expect_err("metadata");
        assert_eq!(err.code(), tonic::Code::PermissionDenied);

        // Without a certificate identity, any namespace may connect.
        assert!(ConnState::default().identify(Some(&other)).is_ok());
    }
}
