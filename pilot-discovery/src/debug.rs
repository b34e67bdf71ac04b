//! Debug endpoints (`/debug/*`), JSON, named and shaped after Istio's so the
//! same habits work: what each proxy was sent and acknowledged, what the
//! sources hold, what the registry built, what the last push did.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use xds_proto::pb::envoy::config::{
    cluster::v3::Cluster, endpoint::v3::ClusterLoadAssignment, listener::v3::Listener,
    route::v3::RouteConfiguration,
};
use xds_proto::type_url;

use crate::lock::lock;
use crate::resource::Resource;
use crate::sources::{SourceError, SourceSet};
use crate::xds::generate::generators::{generate, short_name, GENERATORS};
use crate::xds::generate::named::Named;
use crate::xds::server::hub::{ConnHandle, XdsHub};

/// What a page that needs the first snapshot answers before it exists.
const NOT_READY: &str = "not ready: sources are still loading\n";

#[derive(Clone)]
pub struct DebugState {
    pub hub: Arc<XdsHub>,
    pub sources: SourceSet,
    /// Problems found between resources, from the snapshot builder.
    pub problems: tokio::sync::watch::Receiver<Arc<Vec<crate::push::problems::Listed>>>,
}

fn unix_ms(t: std::time::SystemTime) -> u128 {
    t.duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis())
}

fn watches_json(c: &ConnHandle) -> (Value, Value) {
    let state = lock(&c.state);
    let proxy = state.proxy.as_ref().map(|p| p.node_id.clone());
    let types: BTreeMap<&str, Value> = state
        .watches
        .iter()
        .map(|(t, w)| {
            (
                short_name(t),
                serde_json::to_value(w).unwrap_or(Value::Null),
            )
        })
        .collect();
    (json!(proxy), json!(types))
}

/// Per proxy and type: nonce and version sent, nonce acknowledged, last NACK.
pub async fn syncz(State(s): State<DebugState>) -> Json<Value> {
    let rows: Vec<Value> = s
        .hub
        .connections()
        .iter()
        .map(|c| {
            let (proxy, types) = watches_json(c);
            let types = strip_names(types);
            json!({ "proxy": proxy, "connectionId": c.id, "types": types })
        })
        .collect();
    Json(json!(rows))
}

/// Sync status without the (possibly long) subscription lists.
fn strip_names(mut types: Value) -> Value {
    if let Some(map) = types.as_object_mut() {
        for w in map.values_mut() {
            if let Some(obj) = w.as_object_mut() {
                obj.remove("names");
                obj.remove("wildcard");
            }
        }
    }
    types
}

/// Connections and their subscriptions.
pub async fn adsz(State(s): State<DebugState>) -> Json<Value> {
    let conns = s.hub.connections();
    let clients: Vec<Value> = conns
        .iter()
        .map(|c| {
            let (proxy, types) = watches_json(c);
            json!({
                "connectionId": c.id,
                "proxy": proxy,
                "peer": c.peer.map(|p| p.to_string()),
                "flavour": c.flavour,
                "connectedAtUnixMs": unix_ms(c.connected_at),
                "watches": types,
            })
        })
        .collect();
    Json(json!({ "totalClients": conns.len(), "clients": clients }))
}

fn resource_json(r: &Resource) -> Value {
    let key = r.key();
    let object = r.to_json();
    json!({
        "kind": key.kind.to_string(),
        "namespace": key.namespace,
        "name": key.name,
        "object": object,
    })
}

/// Every config object in force, and every input currently rejected.
pub async fn configz(State(s): State<DebugState>) -> Json<Value> {
    let states = s.sources.current();
    let resources: Vec<Value> = states
        .iter()
        .flat_map(|s| s.resources.values())
        .map(resource_json)
        .collect();
    let errors: Vec<&SourceError> = states.iter().flat_map(|s| &s.errors).collect();
    let problems = s.problems.borrow().clone();
    Json(json!({ "resources": resources, "errors": errors, "problems": *problems }))
}

fn not_ready() -> Response {
    (StatusCode::SERVICE_UNAVAILABLE, NOT_READY).into_response()
}

/// The services of the current snapshot.
pub async fn registryz(State(s): State<DebugState>) -> Response {
    match s.hub.snapshot() {
        Some(snap) => Json(json!({
            "version": snap.version,
            "services": snap.services.values().collect::<Vec<_>>(),
        }))
        .into_response(),
        None => not_ready(),
    }
}

/// The endpoints of the current snapshot, by service.
pub async fn endpointz(State(s): State<DebugState>) -> Response {
    match s.hub.snapshot() {
        Some(snap) => {
            Json(json!({ "version": snap.version, "endpoints": snap.endpoints })).into_response()
        }
        None => not_ready(),
    }
}

pub async fn push_status(State(s): State<DebugState>) -> Json<Value> {
    let status = s.hub.push_status();
    let nacks: Vec<Value> = s
        .hub
        .connections()
        .iter()
        .flat_map(|c| {
            let state = lock(&c.state);
            let proxy = state.node_id().to_string();
            state
                .watches
                .iter()
                .filter_map(|(t, w)| {
                    w.last_nack
                        .as_ref()
                        .map(|m| json!({ "proxy": proxy, "type": short_name(t), "error": m }))
                })
                .collect::<Vec<_>>()
        })
        .collect();
    Json(json!({ "status": status, "nacks": nacks }))
}

#[derive(Debug, Deserialize)]
pub struct DumpQuery {
    #[serde(rename = "proxyID")]
    proxy_id: Option<String>,
}

/// A readable rendering of a generated resource. Envoy's API types carry no
/// JSON mapping here, so the message is shown in its Rust debug form.
fn describe(t: &str, n: &Named) -> Value {
    let text = match t {
        type_url::CLUSTER => xds_proto::unpack::<Cluster>(&n.resource).map(|m| format!("{m:?}")),
        type_url::ENDPOINT => {
            xds_proto::unpack::<ClusterLoadAssignment>(&n.resource).map(|m| format!("{m:?}"))
        }
        type_url::LISTENER => xds_proto::unpack::<Listener>(&n.resource).map(|m| format!("{m:?}")),
        type_url::ROUTE => {
            xds_proto::unpack::<RouteConfiguration>(&n.resource).map(|m| format!("{m:?}"))
        }
        _ => Ok(String::new()),
    };
    json!({
        "name": n.name,
        "version": n.version(),
        "bytes": n.resource.value.len(),
        "config": text.unwrap_or_else(|e| e.to_string()),
    })
}

/// What the server would send a connected proxy now, per type.
pub async fn config_dump(State(s): State<DebugState>, Query(q): Query<DumpQuery>) -> Response {
    let Some(id) = q.proxy_id.filter(|id| !id.is_empty()) else {
        return (
            StatusCode::BAD_REQUEST,
            "missing ?proxyID=<node id of a connected proxy>\n",
        )
            .into_response();
    };
    let Some(snap) = s.hub.snapshot() else {
        return not_ready();
    };
    let Some(conn) = s.hub.find_proxy(&id) else {
        return (
            StatusCode::NOT_FOUND,
            format!("no connected proxy has node id {id}\n"),
        )
            .into_response();
    };
    let state = lock(&conn.state);
    let Some(proxy) = state.proxy.clone() else {
        return (StatusCode::NOT_FOUND, "proxy not identified yet\n").into_response();
    };
    let mut resources = BTreeMap::new();
    for t in GENERATORS.iter().map(|g| g.type_url) {
        let Some(w) = state.watches.get(t) else {
            continue;
        };
        let generated = generate(&snap, &proxy, t, &w.names);
        let list: Vec<Value> = generated.iter().map(|n| describe(t, n)).collect();
        resources.insert(short_name(t), list);
    }
    Json(json!({
        "proxy": id,
        "connectionId": conn.id,
        "version": snap.version,
        "resources": resources,
    }))
    .into_response()
}
