//! `xds-load`: opens many ADS streams as distinct sidecars against a running
//! pilot-discovery (or any xDS server), ACKs everything, and reports how long
//! each proxy took to hold a complete config and how many bytes it received.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use clap::Parser;
use integration_tests::benchmarks::percentile;
use integration_tests::load::{Flavour, Fleet};

#[derive(Debug, Parser)]
#[command(
    name = "xds-load",
    about = "Simulated sidecars on real ADS streams: connect, ACK, measure"
)]
struct Args {
    /// The xDS server.
    #[arg(long, default_value = "127.0.0.1:15010")]
    addr: SocketAddr,
    /// Streams to open, one simulated sidecar each.
    #[arg(long, default_value_t = 100)]
    proxies: usize,
    /// ADS flavour: sotw or delta.
    #[arg(long, default_value = "delta")]
    flavour: Flavour,
    /// Namespaces the proxies are spread over (`ns-0`, `ns-1`, ...).
    #[arg(long, default_value_t = 1)]
    namespaces: usize,
    /// New streams per second; 0 opens them all at once.
    #[arg(long, default_value_t = 0.0)]
    rate: f64,
    /// How long to wait for every proxy to hold a complete config.
    #[arg(long, default_value = "120s", value_parser = humantime::parse_duration)]
    timeout: Duration,
    /// Keep the streams open this long after they are complete.
    #[arg(long, default_value = "0s", value_parser = humantime::parse_duration)]
    hold: Duration,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    integration_tests::init_logging();
    let rate = (args.rate > 0.0).then_some(args.rate);
    let t0 = Instant::now();
    let fleet = Fleet::start(args.addr, args.proxies, args.flavour, args.namespaces, rate);
    let result = fleet.wait_complete(args.timeout).await;
    let all = t0.elapsed();
    let mut times = fleet.connect_times();
    let summary = serde_json::json!({
        "proxies": args.proxies,
        "flavour": format!("{:?}", args.flavour).to_lowercase(),
        "complete": fleet.complete(),
        "allCompleteMs": result.is_ok().then_some(all.as_millis()),
        "connectToCompleteP50Ms": percentile(&mut times, 50.0).as_millis(),
        "connectToCompleteP99Ms": percentile(&mut times, 99.0).as_millis(),
        "bytes": fleet.total_bytes(),
        "error": result.as_ref().err().map(|e| format!("{e:#}")),
    });
    std::io::Write::write_all(
        &mut std::io::stdout(),
        format!("{}\n", serde_json::to_string_pretty(&summary)?).as_bytes(),
    )?;
    if result.is_ok() && !args.hold.is_zero() {
        tokio::time::sleep(args.hold).await;
    }
    fleet.stop().await;
    result
}
