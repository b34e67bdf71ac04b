//! The agent's own metrics, in Prometheus text format, served before
//! Envoy's on the status port's `/stats/prometheus`.

use std::fmt::Write;

use crate::supervisor::Status;

/// Renders the supervisor's state; `ready` is the last readiness answer.
pub fn render(status: &Status, ready: bool) -> String {
    let mut out = String::new();
    let mut metric = |name: &str, kind: &str, help: &str, value: u64| {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} {kind}");
        let _ = writeln!(out, "{name} {value}");
    };
    metric(
        "pilot_agent_envoy_epoch",
        "gauge",
        "Hot restart epoch of the Envoy serving now.",
        status.epoch.map_or(0, u64::from),
    );
    metric(
        "pilot_agent_envoy_running",
        "gauge",
        "1 while an Envoy process is serving.",
        u64::from(status.epoch.is_some()),
    );
    metric(
        "pilot_agent_envoy_live",
        "gauge",
        "1 if the last health probe found Envoy LIVE.",
        u64::from(status.live),
    );
    metric(
        "pilot_agent_envoy_crashes",
        "counter",
        "Times Envoy exited without being asked to.",
        status.crashes,
    );
    metric(
        "pilot_agent_envoy_health_kills",
        "counter",
        "Times the agent killed Envoy after failed health checks.",
        status.health_kills,
    );
    metric(
        "pilot_agent_hot_restarts",
        "counter",
        "Hot restarts completed (a new epoch became LIVE).",
        status.hot_restarts,
    );
    metric(
        "pilot_agent_hot_restart_failures",
        "counter",
        "New epochs that failed to start.",
        status.hot_restart_failures,
    );
    metric(
        "pilot_agent_draining",
        "gauge",
        "1 once the proxy has started draining.",
        u64::from(status.draining),
    );
    metric(
        "pilot_agent_ready",
        "gauge",
        "1 if the last readiness check passed.",
        u64::from(ready),
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_metric_has_help_type_and_value() {
        let text = render(
            &Status {
                epoch: Some(2),
                hot_restarts: 2,
                ..Status::default()
            },
            true,
        );
        assert!(text.contains("\npilot_agent_envoy_epoch 2\n"));
        assert!(text.contains("\npilot_agent_hot_restarts 2\n"));
        assert!(text.contains("\npilot_agent_ready 1\n"));
        let samples = text.lines().filter(|l| !l.starts_with('#')).count();
        assert_eq!(
            text.lines().filter(|l| l.starts_with("# TYPE")).count(),
            samples
        );
    }
}
