//! `make demo`: the example mesh with real traffic.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Parser;
use integration_tests::mesh::{Mesh, PortPlan};

#[derive(Debug, Parser)]
#[command(
    about = "Runs pilot-discovery, pilot-agent and Envoy on an example config folder and sends traffic through the sidecar"
)]
struct Args {
    /// The config folder to serve (copied; the original is never modified).
    #[arg(long, default_value = "examples/mesh")]
    config_dir: PathBuf,

    /// Requests per measurement.
    #[arg(long, default_value_t = 100)]
    requests: usize,
}

fn show(counts: &BTreeMap<String, usize>) -> String {
    let total: usize = counts.values().sum();
    counts
        .iter()
        .map(|(k, n)| {
            format!(
                "{k}: {n:>3} ({:.0}%)",
                100.0 * *n as f64 / total.max(1) as f64
            )
        })
        .collect::<Vec<_>>()
        .join("   ")
}

#[allow(clippy::print_stdout)] // the demo talks to a person
async fn demo(args: Args) -> anyhow::Result<()> {
    println!(
        "starting pilot-discovery, 3 upstreams and pilot-agent + Envoy on {} ...",
        args.config_dir.display()
    );
    let started = Instant::now();
    let mut mesh = Mesh::start(&args.config_dir, PortPlan::AsWritten).await?;
    let p = &mesh.ports;
    let d = &mesh.discovery;
    println!(
        "ready in {:.1?}: xDS 127.0.0.1:{} (delta), Envoy admin 127.0.0.1:{}, sidecar listener 127.0.0.1:{}",
        started.elapsed(),
        d.grpc,
        p.admin,
        p.service
    );
    println!(
        "  pilot debug pages: http://127.0.0.1:{}/debug/syncz  /debug/adsz  /debug/push_status  /metrics",
        d.monitoring
    );
    println!(
        "  config folder (a copy you may edit): {}",
        mesh.config_dir().display()
    );

    let counts = mesh.split("reviews", args.requests).await?;
    println!(
        "\n{} requests to reviews, VirtualService asks for v1 80% / v2 20%:\n  {}",
        args.requests,
        show(&counts)
    );

    let ratings = mesh.request("ratings.default.svc.cluster.local").await?;
    println!(
        "\nratings (a Kubernetes Service + EndpointSlice): HTTP {} {:?}",
        ratings.status,
        ratings.body.trim()
    );

    let file = mesh.config_dir().join("reviews-routing.yaml");
    let text = std::fs::read_to_string(&file)
        .with_context(|| format!("cannot read {}", file.display()))?;
    let changed = text
        .replace("weight: 80", "weight: 0")
        .replace("weight: 20", "weight: 100");
    std::fs::write(&file, changed)?;
    println!("\nrewrote {} to send 100% to v2 ...", file.display());
    let t = Instant::now();
    mesh.wait_routing("reviews", |b| b == "v2", Duration::from_secs(20))
        .await?;
    println!("  the change reached Envoy in {:.0?}", t.elapsed());
    let counts = mesh.split("reviews", args.requests).await?;
    println!(
        "{} requests to reviews now:\n  {}",
        args.requests,
        show(&counts)
    );
    println!("\nstopping everything.");
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    tokio::select! {
        result = demo(args) => result,
        _ = tokio::signal::ctrl_c() => {
            // Dropping the demo future stops every process it started.
            eprintln!("interrupted; stopping everything.");
            Ok(())
        }
    }
}
