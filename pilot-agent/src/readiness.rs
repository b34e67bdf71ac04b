//! Whether the proxy is ready for traffic, and if not, why: Envoy LIVE with
//! its workers started and both clusters (CDS) and listeners (LDS) received
//! from discovery. Once reached, readiness only needs Envoy LIVE: it does not
//! flap when discovery goes away, and a hot restart does not interrupt it
//! while the old epoch serves. A drain ends it for good.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::admin::Admin;
use crate::supervisor::Status;

/// The admin stats readiness reads, in one request.
const FILTER: &str = r"^(server\.state|listener_manager\.workers_started|cluster_manager\.cds\.update_(success|rejected)|listener_manager\.lds\.update_(success|rejected))$";

/// Envoy's `server.state` gauge values.
fn state_name(v: u64) -> &'static str {
    match v {
        0 => "LIVE",
        1 => "DRAINING",
        2 => "PRE_INITIALIZING",
        3 => "INITIALIZING",
        _ => "in an unknown state",
    }
}

/// Judges Envoy's stats for a first readiness: `Err` says what is missing.
pub fn evaluate(stats: &BTreeMap<String, u64>) -> Result<(), String> {
    let get = |k: &str| stats.get(k).copied().unwrap_or(0);
    let state = stats.get("server.state").copied().unwrap_or(u64::MAX);
    if state != 0 {
        return Err(format!("Envoy is {}", state_name(state)));
    }
    if get("listener_manager.workers_started") == 0 {
        return Err("Envoy's workers have not started".into());
    }
    let cds =
        get("cluster_manager.cds.update_success") + get("cluster_manager.cds.update_rejected");
    let lds =
        get("listener_manager.lds.update_success") + get("listener_manager.lds.update_rejected");
    if cds == 0 || lds == 0 {
        return Err(format!(
            "config not received from discovery (CDS updates: {cds}, LDS updates: {lds})"
        ));
    }
    Ok(())
}

pub struct Readiness {
    admin: Admin,
    ever_ready: AtomicBool,
}

impl Readiness {
    pub fn new(admin: Admin) -> Readiness {
        Readiness {
            admin,
            ever_ready: AtomicBool::new(false),
        }
    }

    pub async fn check(&self, status: &Status) -> Result<(), String> {
        if status.draining {
            return Err("the proxy is draining".into());
        }
        let ever = self.ever_ready.load(Ordering::Relaxed);
        if status.epoch.is_none() {
            return Err("Envoy is not running; the agent is restarting it".into());
        }
        if ever && status.starting_epoch.is_some() {
            // The admin port belongs to the new epoch, which is still
            // starting; the old one serves until it is LIVE.
            return Ok(());
        }
        let stats = self.admin.stats(FILTER).await.map_err(|e| e.to_string())?;
        if ever {
            return match stats.get("server.state") {
                Some(0) => Ok(()),
                Some(&s) => Err(format!("Envoy is {}", state_name(s))),
                None => Err("Envoy did not report its state".into()),
            };
        }
        evaluate(&stats)?;
        self.ever_ready.store(true, Ordering::Relaxed);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stats(pairs: &[(&str, u64)]) -> BTreeMap<String, u64> {
        pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect()
    }

    #[test]
    fn each_missing_piece_is_named() {
        let live = [
            ("server.state", 0),
            ("listener_manager.workers_started", 1),
            ("cluster_manager.cds.update_success", 1),
            ("listener_manager.lds.update_success", 1),
        ];
        assert_eq!(evaluate(&stats(&live)), Ok(()));
        assert_eq!(
            evaluate(&stats(&[("server.state", 2)])),
            Err("Envoy is PRE_INITIALIZING".into())
        );
        assert_eq!(
            evaluate(&stats(&[("server.state", 0)])),
            Err("Envoy's workers have not started".into())
        );
        assert_eq!(
            evaluate(&stats(&[
                ("server.state", 0),
                ("listener_manager.workers_started", 1),
                ("cluster_manager.cds.update_rejected", 1),
            ])),
            Err("config not received from discovery (CDS updates: 1, LDS updates: 0)".into())
        );
        assert!(evaluate(&stats(&[])).is_err());
    }

    #[tokio::test]
    async fn draining_and_restarting_are_never_ready() {
        // Port 1 on loopback: nothing answers, and nothing should be asked.
        let r = Readiness::new(Admin::new(1, std::time::Duration::from_millis(100)));
        let draining = Status {
            draining: true,
            epoch: Some(0),
            ..Status::default()
        };
        assert_eq!(
            r.check(&draining).await,
            Err("the proxy is draining".into())
        );
        let down = Status::default();
        assert!(r.check(&down).await.is_err());
        let up = Status {
            epoch: Some(0),
            ..Status::default()
        };
        let e = r.check(&up).await.expect_err("admin is unreachable");
        assert!(e.contains("unreachable"), "{e}");
    }
}
