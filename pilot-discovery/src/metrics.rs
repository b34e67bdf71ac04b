//! Prometheus metrics under Istio's names, so existing pilot dashboards and
//! alerts work unchanged.

use mesh_model::ConfigKind;
use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};

/// Seconds, from well under a millisecond (what a push takes here) up to the
/// half minute Istio's buckets stop at.
const TIME_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 3.0, 5.0, 10.0, 20.0, 30.0,
];
/// Bytes, as Istio buckets config sizes.
const SIZE_BUCKETS: &[f64] = &[
    1.0,
    10_000.0,
    1_000_000.0,
    4_000_000.0,
    10_000_000.0,
    40_000_000.0,
];

#[derive(Debug, thiserror::Error)]
#[error("cannot register metric: {0}")]
pub struct MetricsError(#[from] prometheus::Error);

#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    /// Connected xDS streams.
    pub xds_clients: IntGauge,
    /// Responses sent, by type (`cds`, `eds`, `lds`, `rds`, and `<type>_senderr`).
    pub pushes: IntCounterVec,
    /// Time to build and queue one response, by type.
    pub push_time: HistogramVec,
    /// From the first source event of a change until it was sent to a proxy.
    pub convergence_time: Histogram,
    /// NACKs received, by type.
    pub rejects: IntCounterVec,
    /// From the first event of a burst until its push started.
    pub debounce_time: Histogram,
    /// Source events, by kind (`config`, `svc`, `eds`).
    pub inbound_updates: IntCounterVec,
    /// Services in the current snapshot.
    pub services: IntGauge,
    /// Size of each response, by type.
    pub config_size: HistogramVec,
    /// Config resources rejected by parsing or validation, by kind
    /// (`file` for a file that could not be read as config at all). Each
    /// distinct problem counts once, not once per resync.
    pub rejected_configs: IntCounterVec,
    /// Resources in force that lose a conflict with another, by kind, in
    /// the current snapshot.
    pub config_conflicts: IntGaugeVec,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Metrics {
    pub fn new() -> Result<Self, MetricsError> {
        let registry = Registry::new();
        let type_label = &["type"];
        let m = Metrics {
            xds_clients: IntGauge::new("pilot_xds", "Number of endpoints connected to this pilot using XDS.")?,
            pushes: IntCounterVec::new(
                Opts::new("pilot_xds_pushes", "Pilot build and send errors for lds, rds, cds and eds."),
                type_label,
            )?,
            push_time: HistogramVec::new(
                HistogramOpts::new("pilot_xds_push_time", "Total time in seconds Pilot takes to push lds, rds, cds and eds.")
                    .buckets(TIME_BUCKETS.to_vec()),
                type_label,
            )?,
            convergence_time: Histogram::with_opts(
                HistogramOpts::new("pilot_proxy_convergence_time", "Delay in seconds between config change and a proxy receiving all required configuration.")
                    .buckets(TIME_BUCKETS.to_vec()),
            )?,
            rejects: IntCounterVec::new(
                Opts::new("pilot_total_xds_rejects", "Total number of XDS responses from pilot rejected by proxy."),
                type_label,
            )?,
            debounce_time: Histogram::with_opts(
                HistogramOpts::new("pilot_debounce_time", "Delay in seconds between the first config enters debouncing and the merged push request is pushed into the push queue.")
                    .buckets(TIME_BUCKETS.to_vec()),
            )?,
            inbound_updates: IntCounterVec::new(
                Opts::new("pilot_inbound_updates", "Total number of updates received by pilot."),
                type_label,
            )?,
            services: IntGauge::new("pilot_services", "Total services known to pilot.")?,
            config_size: HistogramVec::new(
                HistogramOpts::new("pilot_xds_config_size_bytes", "Distribution of configuration sizes pushed to clients")
                    .buckets(SIZE_BUCKETS.to_vec()),
                type_label,
            )?,
            rejected_configs: IntCounterVec::new(
                Opts::new("pilot_total_rejected_configs", "Total number of configs that Pilot had to reject or ignore."),
                type_label,
            )?,
            config_conflicts: IntGaugeVec::new(
                Opts::new("pilot_config_conflicts", "Configs in force that lose a conflict with another (two VirtualServices for one host, two ServiceEntries on one port, ...)."),
                type_label,
            )?,
            registry,
        };
        m.registry.register(Box::new(m.xds_clients.clone()))?;
        m.registry.register(Box::new(m.pushes.clone()))?;
        m.registry.register(Box::new(m.push_time.clone()))?;
        m.registry.register(Box::new(m.convergence_time.clone()))?;
        m.registry.register(Box::new(m.rejects.clone()))?;
        m.registry.register(Box::new(m.debounce_time.clone()))?;
        m.registry.register(Box::new(m.inbound_updates.clone()))?;
        m.registry.register(Box::new(m.services.clone()))?;
        m.registry.register(Box::new(m.config_size.clone()))?;
        m.registry.register(Box::new(m.rejected_configs.clone()))?;
        m.registry.register(Box::new(m.config_conflicts.clone()))?;
        Ok(m)
    }

    /// The Prometheus text exposition of every metric.
    /// Counts one rejected resource of `kind` (`None`: a whole file).
    pub fn count_rejected(&self, kind: Option<ConfigKind>) {
        self.rejected_configs
            .with_label_values(&[kind.map_or("file", ConfigKind::as_str)])
            .inc();
    }

    pub fn render(&self) -> String {
        let mut out = Vec::new();
        if let Err(e) = TextEncoder::new().encode(&self.registry.gather(), &mut out) {
            tracing::warn!(error = %e, "cannot encode metrics");
        }
        String::from_utf8_lossy(&out).into_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposes_istio_names() {
        let m = Metrics::new().expect("metrics");
        m.pushes.with_label_values(&["cds"]).inc();
        m.rejects.with_label_values(&["eds"]).inc();
        m.inbound_updates.with_label_values(&["config"]).inc();
        m.push_time.with_label_values(&["cds"]).observe(0.001);
        m.config_size.with_label_values(&["cds"]).observe(100.0);
        m.convergence_time.observe(0.01);
        m.debounce_time.observe(0.1);
        m.xds_clients.set(3);
        m.services.set(2);
        m.rejected_configs
            .with_label_values(&["VirtualService"])
            .inc();
        m.config_conflicts
            .with_label_values(&["ServiceEntry"])
            .set(2);
        let text = m.render();
        for line in [
            "pilot_xds 3",
            "pilot_xds_pushes{type=\"cds\"} 1",
            "pilot_total_xds_rejects{type=\"eds\"} 1",
            "pilot_inbound_updates{type=\"config\"} 1",
            "pilot_services 2",
            "pilot_xds_push_time_count{type=\"cds\"} 1",
            "pilot_proxy_convergence_time_count 1",
            "pilot_debounce_time_count 1",
            "pilot_xds_config_size_bytes_count{type=\"cds\"} 1",
            "pilot_total_rejected_configs{type=\"VirtualService\"} 1",
            "pilot_config_conflicts{type=\"ServiceEntry\"} 2",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "missing {line:?} in\n{text}"
            );
        }
    }
}
