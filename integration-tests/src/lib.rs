//! Test harness shared by the end-to-end tests and `make demo`: real
//! pilot-discovery, pilot-agent and Envoy processes on loopback.

pub mod ads_client;
pub mod benchmarks;
pub mod binaries;
pub mod client;
pub mod discovery;
pub mod echo;
pub mod fixture;
pub mod kube_api;
pub mod layering;
pub mod load;
pub mod mesh;
pub mod pki;
pub mod port_holders;
pub mod ports;
pub mod process;
pub mod procstat;
pub mod sidecar;
pub mod synth;
pub mod traffic;
pub mod upstream;
pub mod wait;

/// Logs of the harness's own command-line tools: to stderr, so their
/// stdout carries only the report.
pub fn init_logging() {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_target(false)
        .init();
}
