//! Incremental (delta) ADS as a plain state machine over [`ConnState`].
//!
//! The server remembers, per type, the version of every resource the proxy
//! holds (`client_has`, seeded from `initial_resource_versions` when a proxy
//! reconnects). A response carries only resources whose version differs, and
//! names the ones that no longer exist in `removed_resources`. Subscription
//! changes are applied from every request, whatever its nonce: in delta they
//! are increments and a skipped one would be lost for good.

use std::collections::BTreeSet;
use std::sync::Arc;

use tonic::Status;
use xds_proto::pb::envoy::service::discovery::v3::DeltaDiscoveryRequest;

use super::held::Held;
use super::response::DeltaResponse;
use super::state::{ConnState, Watch};
use crate::push::PushScope;
use crate::xds::context::{PushContext, ResourceSet};
use crate::xds::digest::{digest, mix};
use crate::xds::generate::named::Named;
use crate::xds::generate::proxy::Proxy;
use crate::xds::intern::{intern, Names};

const WILDCARD: &str = "*";

/// Applies one request; the responses it needs: none, one, or one in
/// parts.
pub fn on_request(
    state: &mut ConnState,
    req: &DeltaDiscoveryRequest,
    snap: &PushContext,
) -> Result<Vec<DeltaResponse>, Status> {
    state.identify(req.node.as_ref())?;
    let t = req.type_url.as_str();
    let Some(served) = state.served(t) else {
        return Ok(Vec::new());
    };
    let node = state.node_id().to_string();
    let proxy = state.proxy.clone();

    let Some(w) = state.watches.get_mut(t) else {
        // First request for the type on this stream.
        let subscribe = &req.resource_names_subscribe;
        let wildcard =
            subscribe.iter().any(|n| n == WILDCARD) || (served.wildcard && subscribe.is_empty());
        state.watches.insert(
            t.to_string(),
            Watch {
                wildcard,
                names: Names::own(
                    subscribe
                        .iter()
                        .filter(|n| *n != WILDCARD)
                        .map(|n| intern(n))
                        .collect(),
                ),
                client_has: req
                    .initial_resource_versions
                    .iter()
                    .map(|(name, version)| (name.as_str().into(), held_digest(version)))
                    .collect(),
                ..Default::default()
            },
        );
        state.mark_warming_dependents(t);
        return Ok(respond(state, snap, t, Target::All, true));
    };

    let mut names_changed = false;
    for name in &req.resource_names_unsubscribe {
        if name == WILDCARD {
            w.wildcard = false;
        } else {
            names_changed |= w.names.remove(name.as_str());
        }
        w.client_has.remove(name.as_str());
    }
    let mut added = BTreeSet::new();
    let mut became_wildcard = false;
    for name in &req.resource_names_subscribe {
        if name == WILDCARD {
            became_wildcard |= !w.wildcard;
            w.wildcard = true;
        } else {
            // Subscribing says the proxy does not hold the resource (any more).
            w.client_has.remove(name.as_str());
            let name = intern(name);
            names_changed |= w.names.insert(name.clone());
            added.insert(name);
        }
    }

    let mut always = false;
    if !req.response_nonce.is_empty() {
        let last_part = req.response_nonce == w.nonce_sent;
        let earlier_part = w.earlier_parts.contains(&req.response_nonce);
        if !last_part && !earlier_part {
            tracing::debug!(
                node,
                type_url = t,
                nonce = req.response_nonce,
                "stale nonce"
            );
        } else if let Some(err) = &req.error_detail {
            tracing::warn!(
                node,
                type_url = t,
                nonce = req.response_nonce,
                error = err.message,
                "proxy rejected config (NACK)"
            );
            w.last_nack = Some(err.message.clone());
        } else if last_part {
            w.nonce_acked = req.response_nonce.clone();
            w.last_nack = None;
            always = std::mem::take(&mut w.always_respond);
            if !names_changed {
                settle(w, proxy.as_deref(), snap, t);
            }
        }
    }

    let target = if became_wildcard || always {
        Target::All
    } else if !added.is_empty() {
        // A wildcard type is generated whole anyway; the diff against
        // `client_has` keeps the response to what is new.
        if w.wildcard {
            Target::All
        } else {
            Target::Only(added)
        }
    } else {
        return Ok(Vec::new());
    };
    Ok(respond(state, snap, t, target, true))
}

/// Past this many resources held apart from a shared list, a settled
/// watch checks whether it holds a shared list whole after all.
const REBASE_AT: usize = 64;

/// Once a proxy ACKs without changing its subscription, that subscription
/// has settled: it is shared with the streams subscribed alike, and what
/// the proxy holds is rebased on the shared list it adds up to, if it holds
/// exactly that (endpoints subscribed in steps are otherwise recorded one
/// by one).
fn settle(w: &mut Watch, proxy: Option<&Proxy>, snap: &PushContext, t: &str) {
    if w.wildcard || w.names.is_shared() {
        return;
    }
    w.names.share();
    let Some(proxy) = proxy else {
        return;
    };
    if w.client_has.changes() < REBASE_AT {
        return;
    }
    let set = snap.resource_set(proxy, t, &w.names);
    if !set.shared().items().is_empty() && set.digest() == w.client_has.digest() {
        w.client_has = Held::from_set(&set);
    }
}

/// The responses a push needs, in push order; types with nothing new are
/// skipped.
pub fn on_push(
    state: &mut ConnState,
    snapshot: &PushContext,
    scope: &Arc<PushScope>,
) -> Vec<DeltaResponse> {
    state
        .push_plan(scope, snapshot)
        .into_iter()
        .flat_map(|(t, only)| {
            let target = only.map_or(Target::All, Target::Only);
            respond(state, snapshot, t, target, false)
        })
        .collect()
}

/// The digest a version a proxy reports holding stands for. Versions are
/// digests in hex (`Named::version`); anything else came from another
/// server and stands for no digest, so the resource is sent again (bar a
/// one in 2^64 match with the value it is given here).
fn held_digest(version: &str) -> u64 {
    match u64::from_str_radix(version, 16) {
        Ok(d) if version.len() == 16 => d,
        _ => mix(digest(version.as_bytes())),
    }
}

enum Target {
    /// Everything subscribed: resources missing from the result are removed.
    All,
    /// Just these names.
    Only(BTreeSet<Arc<str>>),
}

/// What the proxy needs of `t`: nothing, one response, or, for a change
/// over the stream's part size, several, each with its own nonce.
fn respond(
    state: &mut ConnState,
    snap: &PushContext,
    t: &str,
    target: Target,
    answer_even_if_empty: bool,
) -> Vec<DeltaResponse> {
    let Some(proxy) = state.proxy.clone() else {
        return Vec::new();
    };
    let Some(w) = state.watches.get(t) else {
        return Vec::new();
    };
    let generated: ResourceSet = match &target {
        Target::All => snap.resource_set(&proxy, t, &w.names),
        Target::Only(names) if names.is_empty() => return Vec::new(),
        // A wildcard type is generated whole; keep what was asked for.
        Target::Only(names) if w.wildcard => snap
            .resources(&proxy, t, names)
            .into_iter()
            .filter(|g| names.contains(&*g.name))
            .collect::<Vec<_>>()
            .into(),
        Target::Only(names) => snap.resources(&proxy, t, names).into(),
    };

    // The whole set for this proxy, digested: when it equals what the proxy
    // holds, there is nothing to compare resource by resource.
    let all = matches!(target, Target::All);
    if all && generated.digest() == w.client_has.digest() && !answer_even_if_empty {
        return Vec::new();
    }

    // A proxy still holding the shared list whole needs none of it.
    let shared: &[Arc<Named>] = if w.client_has.holds_whole(generated.shared()) {
        &[]
    } else {
        generated.shared().items()
    };
    let resources: Vec<Arc<Named>> = shared
        .iter()
        .chain(generated.own())
        .filter(|g| w.client_has.get(&g.name) != Some(g.digest))
        .cloned()
        .collect();
    // What a full response leaves the proxy holding.
    let now_has: Option<Held> = all.then(|| Held::from_set(&generated));
    let removed: Vec<String> = match &now_has {
        Some(now_has) => w.client_has.missing_from(now_has),
        None => Vec::new(),
    };
    if resources.is_empty() && removed.is_empty() && !answer_even_if_empty {
        return Vec::new();
    }

    let parts = split(resources, removed, state.part_bytes);
    let nonces: Vec<String> = parts
        .iter()
        .map(|_| state.next_nonce(snap.version))
        .collect();
    let Some(w) = state.watches.get_mut(t) else {
        return Vec::new();
    };
    match now_has {
        Some(now_has) => w.client_has = now_has,
        None => {
            for g in generated.iter() {
                w.client_has.insert(g.name.clone(), g.digest);
            }
        }
    }
    w.earlier_parts = nonces[..nonces.len() - 1].to_vec();
    w.nonce_sent = nonces[nonces.len() - 1].clone();
    w.version_sent = snap.version.to_string();
    parts
        .into_iter()
        .zip(nonces)
        .map(|((resources, removed_resources), nonce)| DeltaResponse {
            system_version_info: snap.version.to_string(),
            resources,
            type_url: t.to_string(),
            removed_resources,
            nonce,
        })
        .collect()
}

/// One response's resources and removals.
type Part = (Vec<Arc<Named>>, Vec<String>);

/// Splits a response's resources into parts of at most `part_bytes` (a
/// bigger resource goes alone); the removals ride in the last part. Always
/// at least one part.
fn split(resources: Vec<Arc<Named>>, removed: Vec<String>, part_bytes: usize) -> Vec<Part> {
    let mut parts: Vec<Part> = vec![(Vec::new(), Vec::new())];
    let mut bytes = 0;
    for r in resources {
        let size = r.name.len() + r.resource.value.len();
        let started = parts.last().is_some_and(|(rs, _)| !rs.is_empty());
        if started && bytes + size > part_bytes {
            parts.push((Vec::new(), Vec::new()));
            bytes = 0;
        }
        bytes += size;
        if let Some((rs, _)) = parts.last_mut() {
            rs.push(r);
        }
    }
    if let Some((_, last)) = parts.last_mut() {
        *last = removed;
    }
    parts
}

#[cfg(test)]
mod tests;
