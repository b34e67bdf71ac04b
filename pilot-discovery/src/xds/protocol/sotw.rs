//! State-of-the-world ADS as a plain state machine over [`ConnState`]:
//! requests and pushes in, responses out. No I/O here, so every protocol rule
//! is testable without a network.
//!
//! The rules, as Envoy and Istio apply them: a request with an empty nonce
//! (re)subscribes and is answered; a request carrying the last nonce sent is an
//! ACK, answered only if its resource names changed; one carrying an older
//! nonce is stale and ignored; a NACK (`error_detail`) is recorded and not
//! answered, since the same config would be rejected again.

use std::collections::BTreeSet;
use std::sync::Arc;

use tonic::Status;
use xds_proto::pb::envoy::service::discovery::v3::DiscoveryRequest;

use super::response::SotwResponse;
use super::state::{ConnState, Watch};
use crate::push::PushScope;
use crate::xds::context::PushContext;
use crate::xds::intern::{intern, Names};

/// Applies one request; the responses it needs (zero or one). An error ends
/// the stream with that status.
pub fn on_request(
    state: &mut ConnState,
    req: &DiscoveryRequest,
    snap: &PushContext,
) -> Result<Vec<SotwResponse>, Status> {
    state.identify(req.node.as_ref())?;
    let t = req.type_url.as_str();
    let Some(served) = state.served(t) else {
        return Ok(Vec::new());
    };
    let names: BTreeSet<Arc<str>> = req.resource_names.iter().map(|n| intern(n)).collect();
    let node = state.node_id().to_string();

    if let Some(err) = &req.error_detail {
        // The proxy keeps its previous config; re-sending the same one would
        // be rejected the same way, so wait for the next change.
        tracing::warn!(
            node,
            type_url = t,
            nonce = req.response_nonce,
            error = err.message,
            "proxy rejected config (NACK)"
        );
        if let Some(w) = state.watches.get_mut(t) {
            w.last_nack = Some(err.message.clone());
            if !served.wildcard {
                w.names = Names::new(names);
            }
        }
        return Ok(Vec::new());
    }

    let respond = match state.watches.get_mut(t) {
        // First request for the type on this stream, or Envoy carrying a nonce
        // over from a stream to another server: answer it.
        None => {
            state.watches.insert(
                t.to_string(),
                Watch {
                    wildcard: served.wildcard,
                    names: Names::new(names),
                    ..Default::default()
                },
            );
            state.mark_warming_dependents(t);
            true
        }
        Some(w) if req.response_nonce.is_empty() => {
            w.names = Names::new(names);
            state.mark_warming_dependents(t);
            true
        }
        Some(w) if req.response_nonce != w.nonce_sent => {
            tracing::debug!(
                node,
                type_url = t,
                nonce = req.response_nonce,
                "stale nonce ignored"
            );
            false
        }
        Some(w) => {
            w.nonce_acked = req.response_nonce.clone();
            w.last_nack = None;
            let always = std::mem::take(&mut w.always_respond);
            // Most requests are ACKs of the same names: shared only when new.
            let changed = !w.wildcard && names != *w.names;
            if changed {
                w.names = Names::new(names);
            }
            changed || always
        }
    };
    Ok(if respond {
        respond_with(state, snap, t, None, false)
            .into_iter()
            .collect()
    } else {
        Vec::new()
    })
}

/// The responses a push needs, clusters before endpoints before listeners
/// before routes. A type whose resources for this proxy are what it was last
/// sent is left out, so a change that does not concern a proxy sends it
/// nothing. Once clusters are sent, endpoints are sent too, so clusters that
/// Envoy re-creates finish warming.
pub fn on_push(
    state: &mut ConnState,
    snapshot: &PushContext,
    scope: &Arc<PushScope>,
) -> Vec<SotwResponse> {
    let mut clusters_sent = false;
    let mut out = Vec::new();
    for (t, only) in state.push_plan(scope, snapshot) {
        let must_send = clusters_sent && t == xds_proto::type_url::ENDPOINT;
        if let Some(r) = respond_with(state, snapshot, t, only.as_ref(), !must_send) {
            clusters_sent |= t == xds_proto::type_url::CLUSTER;
            out.push(r);
        }
    }
    out
}

/// Builds a response for `t` from `snap`: every subscribed resource, or only
/// `only` (incremental EDS: the proxy keeps the clusters not named). With
/// `unless_unchanged`, nothing when the response would carry exactly what
/// the last one for `t` did.
fn respond_with(
    state: &mut ConnState,
    snap: &PushContext,
    t: &str,
    only: Option<&BTreeSet<Arc<str>>>,
    unless_unchanged: bool,
) -> Option<SotwResponse> {
    let proxy = state.proxy.clone()?;
    let w = state.watches.get(t)?;
    let generated = snap.resources(&proxy, t, only.unwrap_or(&w.names));
    let digest = generated.iter().fold(generated.len() as u64, |h, n| {
        (h.rotate_left(5) ^ n.digest).wrapping_mul(0x9e37_79b9_7f4a_7c15)
    });
    if unless_unchanged && w.sent_digest == Some(digest) {
        return None;
    }
    let nonce = state.next_nonce(snap.version);
    let w = state.watches.get_mut(t)?;
    w.sent_digest = Some(digest);
    let version = snap.version.to_string();
    w.nonce_sent = nonce.clone();
    w.version_sent = version.clone();
    Some(SotwResponse {
        version_info: version,
        resources: generated,
        type_url: t.to_string(),
        nonce,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::xds::generate::generators::GENERATORS;

    /// What the hub hands a stream: the snapshot and what the push touches.
    type Pushed = (Arc<PushContext>, Arc<PushScope>);

    fn push_to(state: &mut ConnState, (snapshot, scope): &Pushed) -> Vec<SotwResponse> {
        on_push(state, snapshot, scope)
    }
    use crate::xds::generate::proxy::tests::local_node;
    use std::sync::Arc;
    use xds_proto::pb::google::rpc::Status as RpcStatus;
    use xds_proto::type_url;

    const NODE: &str = "sidecar~127.0.0.1~app.default~default.svc.cluster.local";

    use crate::xds::context::tests::empty as snap;

    fn full(version: u64) -> Pushed {
        (Arc::new(snap(version)), Arc::new(PushScope::Full))
    }

    const A: &str = "outbound|80||a.default.svc.cluster.local";

    /// A full push of a snapshot in which service `a` (port 80, one
    /// endpoint) exists: every type has something new for the proxy.
    fn full_with_a(version: u64) -> Pushed {
        let mut s = crate::snapshot::testing::one_service("{address: 10.0.0.1}");
        s.version = version;
        (
            Arc::new(PushContext::new(Arc::new(s))),
            Arc::new(PushScope::Full),
        )
    }

    fn req(t: &str, names: &[&str], nonce: &str) -> DiscoveryRequest {
        DiscoveryRequest {
            type_url: t.into(),
            resource_names: names.iter().map(ToString::to_string).collect(),
            response_nonce: nonce.into(),
            ..Default::default()
        }
    }

    fn send(c: &mut ConnState, r: &DiscoveryRequest) -> Vec<SotwResponse> {
        on_request(c, r, &snap(1)).expect("request accepted")
    }

    /// A connected proxy with a CDS watch, and the first CDS response.
    fn connected() -> (ConnState, SotwResponse) {
        let mut c = ConnState::default();
        let mut first = req(type_url::CLUSTER, &[], "");
        first.node = Some(local_node(NODE));
        let mut out = send(&mut c, &first);
        assert_eq!(out.len(), 1);
        (c, out.remove(0))
    }

    #[test]
    fn first_request_needs_a_node_id() {
        let mut c = ConnState::default();
        let err =
            on_request(&mut c, &req(type_url::CLUSTER, &[], ""), &snap(1)).expect_err("no node");
        assert_eq!(err.code(), tonic::Code::InvalidArgument);
        let mut bad = req(type_url::CLUSTER, &[], "");
        bad.node = Some(local_node("nonsense"));
        let err = on_request(&mut c, &bad, &snap(1)).expect_err("bad id");
        assert_eq!(err.code(), tonic::Code::InvalidArgument);
    }

    #[test]
    fn ack_nack_and_stale_nonces() {
        let (mut c, r1) = connected();
        assert_eq!(r1.version_info, "1");
        assert!(!r1.nonce.is_empty());

        // ACK: nothing to send.
        assert!(send(&mut c, &req(type_url::CLUSTER, &[], &r1.nonce)).is_empty());
        assert_eq!(c.watches[type_url::CLUSTER].nonce_acked, r1.nonce);

        // A push supersedes r1; an answer to r1 is stale.
        let r2 = push_to(&mut c, &full_with_a(2)).pop().expect("push");
        assert_ne!(r2.nonce, r1.nonce);
        assert!(send(&mut c, &req(type_url::CLUSTER, &[], &r1.nonce)).is_empty());

        // NACK: recorded, nothing re-sent.
        let mut nack = req(type_url::CLUSTER, &[], &r2.nonce);
        nack.error_detail = Some(RpcStatus {
            message: "bad cluster".into(),
            ..Default::default()
        });
        assert!(send(&mut c, &nack).is_empty());
        let w = &c.watches[type_url::CLUSTER];
        assert_eq!(w.last_nack.as_deref(), Some("bad cluster"));
        assert_eq!(w.nonce_acked, r1.nonce);
    }

    #[test]
    fn eds_follows_subscription_changes() {
        let (mut c, _) = connected();
        let r = send(&mut c, &req(type_url::ENDPOINT, &["a"], "")).remove(0);
        assert_eq!(r.resources.len(), 1);
        // ACK with the same names: nothing. With new names: respond.
        assert!(send(&mut c, &req(type_url::ENDPOINT, &["a"], &r.nonce)).is_empty());
        let r = send(&mut c, &req(type_url::ENDPOINT, &["a", "b"], &r.nonce)).remove(0);
        assert_eq!(r.resources.len(), 2);
        // Dropping a name is answered with the remaining ones.
        let r = send(&mut c, &req(type_url::ENDPOINT, &["b"], &r.nonce)).remove(0);
        assert_eq!(r.resources.len(), 1);
    }

    #[test]
    fn clusters_resubscribed_force_the_next_endpoint_answer() {
        let (mut c, cds) = connected();
        let eds = send(&mut c, &req(type_url::ENDPOINT, &["a"], "")).remove(0);
        // Envoy re-subscribes to clusters (a reconnect), then re-asks for the
        // same endpoints with the last nonce: answered despite looking like an ACK.
        assert_eq!(send(&mut c, &req(type_url::CLUSTER, &[], "")).len(), 1);
        assert_eq!(
            send(&mut c, &req(type_url::ENDPOINT, &["a"], &eds.nonce)).len(),
            1
        );
        let _ = cds;
    }

    #[test]
    fn push_order_scope_and_unknown_types() {
        let (mut c, _) = connected();
        for (t, names) in [
            (type_url::ROUTE, &["80"][..]),
            (type_url::LISTENER, &[]),
            (type_url::ENDPOINT, &[A]),
        ] {
            assert_eq!(send(&mut c, &req(t, names, "")).len(), 1);
        }
        assert!(send(&mut c, &req("type.googleapis.com/nope", &[], "")).is_empty());
        let order: Vec<String> = push_to(&mut c, &full_with_a(3))
            .into_iter()
            .map(|r| r.type_url)
            .collect();
        let push_order: Vec<String> = GENERATORS.iter().map(|g| g.type_url.to_string()).collect();
        assert_eq!(order, push_order);
    }

    #[test]
    fn a_push_that_changes_nothing_for_the_proxy_sends_nothing() {
        let (mut c, _) = connected();
        let eds = send(&mut c, &req(type_url::ENDPOINT, &[A], "")).remove(0);
        assert!(send(&mut c, &req(type_url::ENDPOINT, &[A], &eds.nonce)).is_empty());
        // Same content under a new version: nothing to send.
        assert!(push_to(&mut c, &full(2)).is_empty());
        // New clusters are sent, and endpoints with them so the new clusters
        // finish warming.
        let out = push_to(&mut c, &full_with_a(3));
        let types: Vec<&str> = out.iter().map(|r| r.type_url.as_str()).collect();
        assert_eq!(types, [type_url::CLUSTER, type_url::ENDPOINT]);
        // The same again: nothing.
        assert!(push_to(&mut c, &full_with_a(4)).is_empty());
    }

    #[test]
    fn a_relabelled_pod_gets_a_full_push_and_other_proxies_endpoints_only() {
        let (mut c, _) = connected();
        let relabelled = |pod: &str, version| {
            (
                full_with_a(version).0,
                Arc::new(PushScope::Pods {
                    pods: BTreeSet::from([pod.to_string()]),
                    endpoints: BTreeSet::new(),
                }),
            )
        };
        assert!(
            push_to(&mut c, &relabelled("web.default", 2)).is_empty(),
            "another pod's labels send this proxy nothing"
        );
        let out = push_to(&mut c, &relabelled("app.default", 3));
        let types: Vec<&str> = out.iter().map(|r| r.type_url.as_str()).collect();
        assert_eq!(
            types,
            [type_url::CLUSTER],
            "its own pod's labels: a full push"
        );
    }

    #[test]
    fn endpoint_push_sends_only_changed_clusters() {
        let (mut c, _) = connected();
        let a = "outbound|80||a.default.svc.cluster.local";
        let b = "outbound|80||b.default.svc.cluster.local";
        let r = send(&mut c, &req(type_url::ENDPOINT, &[a, b], "")).remove(0);
        assert_eq!(r.resources.len(), 2);
        let push = (
            full_with_a(2).0,
            Arc::new(PushScope::Endpoints(BTreeSet::from([
                mesh_model::Hostname::new("a.default.svc.cluster.local"),
            ]))),
        );
        let out = push_to(&mut c, &push);
        assert_eq!(out.len(), 1, "only EDS is pushed");
        assert_eq!(out[0].type_url, type_url::ENDPOINT);
        assert_eq!(out[0].resources.len(), 1, "only the changed cluster");
        // A change to a service the proxy does not watch sends nothing.
        let other = (
            full(3).0,
            Arc::new(PushScope::Endpoints(BTreeSet::from([
                mesh_model::Hostname::new("zzz"),
            ]))),
        );
        assert!(push_to(&mut c, &other).is_empty());
    }
}
