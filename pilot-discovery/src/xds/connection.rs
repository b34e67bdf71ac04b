//! The state of one ADS stream, as a plain state machine: requests and new
//! snapshots in, responses out. No I/O here, so the protocol rules test
//! without a network.

use std::collections::{BTreeMap, BTreeSet};

use mesh_model::MeshSnapshot;
use tonic::Status;
use xds_proto::pb::envoy::service::discovery::v3::{DiscoveryRequest, DiscoveryResponse};
use xds_proto::type_url;

use super::generate::{generate, is_known_type, is_wildcard_type};
use super::proxy::Proxy;

/// Per resource type: what the proxy asked for and what it was sent.
#[derive(Debug, Default, Clone)]
pub struct Watched {
    pub names: BTreeSet<String>,
    pub nonce_sent: String,
    pub version_sent: String,
    pub nonce_acked: String,
    pub last_nack: Option<String>,
}

/// What to do with one request.
#[derive(Debug, PartialEq, Eq)]
pub enum Decision {
    /// Send the current resources of this type.
    Respond(String),
    /// Nothing to send: an ACK, a NACK, a stale nonce, an unknown type.
    Nothing,
}

#[derive(Debug, Default)]
pub struct Connection {
    proxy: Option<Proxy>,
    watched: BTreeMap<String, Watched>,
    nonces: u64,
}

impl Connection {
    pub fn proxy(&self) -> Option<&Proxy> {
        self.proxy.as_ref()
    }

    pub fn watched(&self, type_url: &str) -> Option<&Watched> {
        self.watched.get(type_url)
    }

    /// Applies one request. An error ends the stream with that status.
    pub fn on_request(&mut self, req: &DiscoveryRequest) -> Result<Decision, Status> {
        if self.proxy.is_none() {
            let node = req
                .node
                .as_ref()
                .filter(|n| !n.id.is_empty())
                .ok_or_else(|| {
                    Status::invalid_argument("the first request must carry a node with an id")
                })?;
            let proxy = Proxy::from_node(node)
                .map_err(|e| Status::invalid_argument(format!("invalid node id: {e}")))?;
            tracing::info!(node = %proxy.node_id, "proxy connected");
            self.proxy = Some(proxy);
        }
        let t = req.type_url.as_str();
        if !is_known_type(t) {
            tracing::warn!(node = %self.node_id(), type_url = t, "request for an unsupported type ignored");
            return Ok(Decision::Nothing);
        }
        let names: BTreeSet<String> = req.resource_names.iter().cloned().collect();
        let node = self.node_id();
        let w = self.watched.entry(t.to_string()).or_default();

        if req.response_nonce.is_empty() {
            // A new subscription (or Envoy re-subscribing after reconnecting).
            w.names = names;
            return Ok(Decision::Respond(t.to_string()));
        }
        if req.response_nonce != w.nonce_sent {
            // An answer to a response that has since been superseded; the
            // proxy will answer the newer one too.
            tracing::debug!(node = %node, type_url = t, nonce = req.response_nonce, "stale nonce ignored");
            return Ok(Decision::Nothing);
        }
        if let Some(err) = &req.error_detail {
            // A NACK: the proxy keeps its previous config. Re-sending the same
            // config would be rejected the same way, so wait for a change.
            tracing::warn!(
                node = %node,
                type_url = t,
                version = w.version_sent,
                error = err.message,
                "proxy rejected config (NACK)"
            );
            w.last_nack = Some(err.message.clone());
            w.names = names;
            return Ok(Decision::Nothing);
        }
        w.nonce_acked = req.response_nonce.clone();
        w.last_nack = None;
        if !is_wildcard_type(t) && names != w.names {
            // An ACK that also changes the subscription (EDS after new
            // clusters, RDS after new listeners).
            w.names = names;
            return Ok(Decision::Respond(t.to_string()));
        }
        Ok(Decision::Nothing)
    }

    /// Builds the response for one type from `snap`.
    pub fn respond(&mut self, snap: &MeshSnapshot, t: &str) -> Option<DiscoveryResponse> {
        let proxy = self.proxy.as_ref()?;
        let w = self.watched.get_mut(t)?;
        self.nonces += 1;
        let nonce = format!("{}-{}", snap.version, self.nonces);
        let version = snap.version.to_string();
        let resources = generate(snap, proxy, t, &w.names);
        w.nonce_sent = nonce.clone();
        w.version_sent = version.clone();
        Some(DiscoveryResponse {
            version_info: version,
            resources,
            type_url: t.to_string(),
            nonce,
            ..Default::default()
        })
    }

    /// Responses for every type the proxy watches, after a config change,
    /// clusters before endpoints before listeners before routes.
    pub fn on_push(&mut self, snap: &MeshSnapshot) -> Vec<DiscoveryResponse> {
        let watched: Vec<&str> = type_url::PUSH_ORDER
            .into_iter()
            .filter(|t| self.watched.contains_key(*t))
            .collect();
        watched
            .into_iter()
            .filter_map(|t| self.respond(snap, t))
            .collect()
    }

    fn node_id(&self) -> String {
        self.proxy
            .as_ref()
            .map(|p| p.node_id.clone())
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::xds::proxy::tests::local_node;
    use xds_proto::pb::google::rpc::Status as RpcStatus;

    const NODE: &str = "sidecar~127.0.0.1~app.default~default.svc.cluster.local";

    fn snap(version: u64) -> MeshSnapshot {
        MeshSnapshot {
            version,
            domain: "cluster.local".into(),
            ..Default::default()
        }
    }

    fn req(t: &str, names: &[&str], nonce: &str) -> DiscoveryRequest {
        DiscoveryRequest {
            type_url: t.into(),
            resource_names: names.iter().map(ToString::to_string).collect(),
            response_nonce: nonce.into(),
            ..Default::default()
        }
    }

    fn decide(c: &mut Connection, r: &DiscoveryRequest) -> Decision {
        c.on_request(r).expect("request accepted")
    }

    fn connected() -> Connection {
        let mut c = Connection::default();
        let mut first = req(type_url::CLUSTER, &[], "");
        first.node = Some(local_node(NODE));
        assert_eq!(
            decide(&mut c, &first),
            Decision::Respond(type_url::CLUSTER.into())
        );
        c
    }

    #[test]
    fn first_request_needs_a_node_id() {
        let mut c = Connection::default();
        let err = c
            .on_request(&req(type_url::CLUSTER, &[], ""))
            .expect_err("no node");
        assert_eq!(err.code(), tonic::Code::InvalidArgument);
        let mut bad = req(type_url::CLUSTER, &[], "");
        bad.node = Some(local_node("nonsense"));
        assert_eq!(
            c.on_request(&bad).expect_err("bad id").code(),
            tonic::Code::InvalidArgument
        );
    }

    #[test]
    fn ack_nack_and_stale_nonces() {
        let mut c = connected();
        let s = snap(1);
        let r1 = c.respond(&s, type_url::CLUSTER).expect("response");
        assert_eq!(r1.version_info, "1");
        assert!(!r1.nonce.is_empty());

        // ACK: nothing to send.
        assert_eq!(
            decide(&mut c, &req(type_url::CLUSTER, &[], &r1.nonce)),
            Decision::Nothing
        );
        assert_eq!(
            c.watched(type_url::CLUSTER).map(|w| w.nonce_acked.clone()),
            Some(r1.nonce.clone())
        );

        // A push supersedes r1; an answer to r1 is stale.
        let r2 = c.on_push(&snap(2)).pop().expect("push");
        assert_ne!(r2.nonce, r1.nonce);
        assert_eq!(
            decide(&mut c, &req(type_url::CLUSTER, &[], &r1.nonce)),
            Decision::Nothing
        );

        // NACK: recorded, nothing re-sent.
        let mut nack = req(type_url::CLUSTER, &[], &r2.nonce);
        nack.error_detail = Some(RpcStatus {
            message: "bad cluster".into(),
            ..Default::default()
        });
        assert_eq!(decide(&mut c, &nack), Decision::Nothing);
        let w = c.watched(type_url::CLUSTER).expect("watched");
        assert_eq!(w.last_nack.as_deref(), Some("bad cluster"));
        assert_eq!(w.nonce_acked, r1.nonce);
    }

    #[test]
    fn eds_follows_subscription_changes() {
        let mut c = connected();
        let s = snap(1);
        assert_eq!(
            decide(&mut c, &req(type_url::ENDPOINT, &["a"], "")),
            Decision::Respond(type_url::ENDPOINT.into())
        );
        let r = c.respond(&s, type_url::ENDPOINT).expect("eds");
        assert_eq!(r.resources.len(), 1);
        // ACK with the same names: nothing. With new names: respond.
        assert_eq!(
            decide(&mut c, &req(type_url::ENDPOINT, &["a"], &r.nonce)),
            Decision::Nothing
        );
        assert_eq!(
            decide(&mut c, &req(type_url::ENDPOINT, &["a", "b"], &r.nonce)),
            Decision::Respond(type_url::ENDPOINT.into())
        );
        let r = c.respond(&s, type_url::ENDPOINT).expect("eds");
        assert_eq!(r.resources.len(), 2);
    }

    #[test]
    fn push_order_and_unknown_types() {
        let mut c = connected();
        for t in [type_url::ROUTE, type_url::LISTENER, type_url::ENDPOINT] {
            assert!(matches!(
                decide(&mut c, &req(t, &[], "")),
                Decision::Respond(_)
            ));
        }
        assert_eq!(
            decide(&mut c, &req("type.googleapis.com/nope", &[], "")),
            Decision::Nothing
        );
        let order: Vec<String> = c
            .on_push(&snap(3))
            .into_iter()
            .map(|r| r.type_url)
            .collect();
        assert_eq!(order, type_url::PUSH_ORDER.map(String::from).to_vec());
    }
}
