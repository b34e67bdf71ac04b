//! Istio's CRDs installed after pilot-discovery started: their resources are
//! watched as soon as the API server serves them, with no restart.

use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::runtime::watcher::{self, watcher, Event};
use kube::runtime::WatchStreamExt;
use kube::{Api, Client};

use super::discovery::{self, custom_kind, custom_kinds, EndpointApiChoice};
use super::watch::Watches;

/// How often, and how long apart, API discovery is asked again for a kind
/// whose CRD has just been established but is not listed yet.
const DISCOVERY_ATTEMPTS: u32 = 10;
const DISCOVERY_RETRY: Duration = Duration::from_millis(500);

/// Watches CustomResourceDefinitions until every Istio kind the model reads
/// is watched; each newly established one starts the watch of its kind.
pub async fn watch_for_istio_kinds(client: Client, mut watches: Watches) {
    if all_watched(&watches) {
        return;
    }
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    let stream = watcher(api, watcher::Config::default()).default_backoff();
    futures::pin_mut!(stream);
    while let Some(event) = stream.next().await {
        let crd = match event {
            Ok(Event::Apply(crd) | Event::InitApply(crd)) => crd,
            Ok(_) => continue,
            Err(e) => {
                tracing::warn!(error = %e, "watch of CustomResourceDefinitions failed; resuming with backoff");
                continue;
            }
        };
        let Some(kind) = new_istio_kind(&crd, &watches) else {
            continue;
        };
        for _ in 0..DISCOVERY_ATTEMPTS {
            match discovery::discover(&client, EndpointApiChoice::Auto).await {
                Ok(served) if served.istio.iter().any(|k| k.kind.as_str() == kind) => {
                    watches.start_istio(&served.istio);
                    break;
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "API discovery failed"),
            }
            tokio::time::sleep(DISCOVERY_RETRY).await;
        }
        if all_watched(&watches) {
            return;
        }
    }
}

fn all_watched(watches: &Watches) -> bool {
    custom_kinds().all(|k| watches.watched().contains(&k.kind))
}

/// The kind an established Istio CRD defines, when the model reads it and it
/// is not watched yet.
fn new_istio_kind<'c>(crd: &'c CustomResourceDefinition, watches: &Watches) -> Option<&'c str> {
    let kind = crd.spec.names.kind.as_str();
    let modelled = custom_kind(&crd.spec.group, kind).filter(|k| !watches.watched().contains(k));
    let established = crd
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| {
            c.iter()
                .any(|c| c.type_ == "Established" && c.status == "True")
        });
    (modelled.is_some() && established).then_some(kind)
}
