//! `make soak`: pilot-discovery (release build) under many simulated
//! sidecars and steady endpoint churn for a long while. Samples the server's
//! memory over time; at the end checks that every proxy holds exactly what a
//! fresh proxy of its namespace gets (nothing stale) and that what is served
//! is the last revision of every service (nothing lost). Writes its report
//! into BENCHMARKS.md, failed or not, and exits non-zero on a failure.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Parser;
use integration_tests::ads_client::{node, port_of, SotwStream};
use integration_tests::benchmarks::{machine, splice, today, MB};
use integration_tests::load::record::{Record, TYPES};
use integration_tests::load::{Fleet, MeshServer, Scale};
use prost::Message;
use xds_proto::pb::envoy::config::endpoint::v3::{lb_endpoint, ClusterLoadAssignment};

const BEGIN: &str = "<!-- soak:begin -->";
const END: &str = "<!-- soak:end -->";
const DEADLINE: Duration = Duration::from_secs(180);

#[derive(Debug, Parser)]
#[command(about = "Soaks pilot-discovery under endpoint churn; writes BENCHMARKS.md")]
struct Args {
    #[arg(long, default_value = "BENCHMARKS.md")]
    out: PathBuf,
    #[command(flatten)]
    scale: Scale,
    /// Endpoint changes per second.
    #[arg(long, default_value_t = 20)]
    churn_rate: u32,
    /// How long the churn goes on.
    #[arg(long, default_value = "10m", value_parser = humantime::parse_duration)]
    duration: Duration,
    /// How often the server's memory is read.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    sample_every: Duration,
}

/// The server's state at one moment of the churn.
#[derive(Debug, Clone, Copy)]
struct Sample {
    secs: f64,
    rss: u64,
    cpu_seconds: f64,
}

/// What the run found.
#[derive(Debug, Default)]
struct Outcome {
    baseline_rss: u64,
    connected_rss: u64,
    samples: Vec<Sample>,
    changes: usize,
    /// From the last change until every proxy held the fresh config.
    settled: Option<Duration>,
    /// Services whose served endpoints were checked against their last revision.
    services_checked: usize,
    failure: Option<String>,
}

/// Everything a proxy holds, per type: how many and a digest.
fn prints(r: &Record) -> [(usize, u64); 4] {
    std::array::from_fn(|t| r.fingerprint(t))
}

/// Least-squares slope of RSS over time, in bytes per second.
fn slope(samples: &[Sample]) -> f64 {
    let n = samples.len() as f64;
    if n < 2.0 {
        return 0.0;
    }
    let mx = samples.iter().map(|s| s.secs).sum::<f64>() / n;
    let my = samples.iter().map(|s| s.rss as f64).sum::<f64>() / n;
    let (mut num, mut den) = (0.0, 0.0);
    for s in samples {
        num += (s.secs - mx) * (s.rss as f64 - my);
        den += (s.secs - mx) * (s.secs - mx);
    }
    if den == 0.0 {
        0.0
    } else {
        num / den
    }
}

async fn churn(
    server: &mut MeshServer,
    fleet: &Fleet,
    args: &Args,
    out: &mut Outcome,
) -> anyhow::Result<Instant> {
    let n = server.mesh.services;
    let mut interval =
        tokio::time::interval(Duration::from_secs_f64(1.0 / f64::from(args.churn_rate)));
    let t0 = Instant::now();
    let mut next_sample = t0;
    let mut last_change = t0;
    while t0.elapsed() < args.duration {
        interval.tick().await;
        // Spread consecutive changes over services and namespaces.
        let svc = (out.changes * 7919) % n;
        last_change = server.change(svc, |r| r.endpoint += 1)?;
        out.changes += 1;
        if Instant::now() >= next_sample {
            let u = server.usage()?;
            out.samples.push(Sample {
                secs: t0.elapsed().as_secs_f64(),
                rss: u.rss,
                cpu_seconds: u.cpu_seconds,
            });
            next_sample += args.sample_every;
        }
        anyhow::ensure!(
            fleet.shared.failed.load(Ordering::Relaxed) == 0,
            "a stream failed during the churn"
        );
    }
    Ok(last_change)
}

/// Every proxy ends up holding what a proxy connecting now gets.
async fn settle(server: &MeshServer, fleet: &Fleet, args: &Args) -> anyhow::Result<()> {
    let fresh = Fleet::start_as(
        "fresh",
        server.discovery.grpc_addr(),
        args.scale.namespaces,
        args.scale.flavour,
        args.scale.namespaces,
        None,
    );
    fresh
        .wait_complete(DEADLINE)
        .await
        .context("fresh proxies")?;
    // The fresh proxies stay connected and are read again at every check:
    // one that connected before the server applied the last change gets it
    // pushed like everyone else, so comparing against what it first held
    // would wait for a state nobody is meant to keep.
    let expected = || -> BTreeMap<String, [(usize, u64); 4]> {
        fresh
            .each(|p, r| (p.namespace.clone(), prints(r)))
            .into_iter()
            .collect()
    };
    let same = |f: &Fleet| {
        let expected = expected();
        f.all(|p, r| expected.get(&p.namespace) == Some(&prints(r)))
    };
    let settled = fleet
        .wait_until("every proxy holds what a fresh proxy gets", DEADLINE, same)
        .await;
    let expected = expected();
    fresh.stop().await;
    if let Err(e) = settled {
        let differ: Vec<String> = fleet
            .each(|p, r| {
                let want = expected.get(&p.namespace)?;
                let have = prints(r);
                let types: Vec<&str> = (0..TYPES.len())
                    .filter(|t| have[*t] != want[*t])
                    .map(|t| pilot_discovery::xds::generate::generators::short_name(TYPES[t]))
                    .collect();
                (!types.is_empty()).then(|| format!("{} ({})", p.node_id, types.join(", ")))
            })
            .into_iter()
            .flatten()
            .collect();
        anyhow::bail!(
            "{e:#}; {} proxies differ, first: {:?}",
            differ.len(),
            differ.first()
        );
    }
    Ok(())
}

/// The port of the endpoints of a load assignment, each once.
fn ports(cla: &ClusterLoadAssignment) -> Vec<u32> {
    let mut out: Vec<u32> = cla
        .endpoints
        .iter()
        .flat_map(|l| &l.lb_endpoints)
        .filter_map(|e| match e.host_identifier.as_ref()? {
            lb_endpoint::HostIdentifier::Endpoint(ep) => port_of(ep.address.as_ref()),
            _ => None,
        })
        .collect();
    out.sort_unstable();
    out
}

/// Waits until a new stream is served every service's last revision, that
/// is until the server has applied the last change (it debounces them).
async fn wait_served(server: &MeshServer) -> anyhow::Result<usize> {
    let deadline = Instant::now() + DEADLINE;
    loop {
        match check_served(server).await {
            Ok(n) => return Ok(n),
            Err(e) if Instant::now() >= deadline => {
                return Err(e.context(format!("still so after {DEADLINE:?}")))
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}

/// Asks for every service's endpoints on a new stream and checks they are
/// the service's last revision: its first endpoint on port 8080 plus the
/// number of changes made to it, the others on 8080.
async fn check_served(server: &MeshServer) -> anyhow::Result<usize> {
    let mesh = server.mesh;
    let names: Vec<String> = (0..mesh.services)
        .map(|i| mesh.clusters(i)[0].clone())
        .collect();
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let mut s = SotwStream::open(server.discovery.grpc_addr()).await?;
    s.subscribe_as(
        node("sidecar~127.0.0.1~soak-check.ns-0~ns-0.svc.cluster.local"),
        xds_proto::type_url::ENDPOINT,
        &refs,
    )
    .await?;
    let resp = s.recv_type(xds_proto::type_url::ENDPOINT).await?;
    let by_name: BTreeMap<String, ClusterLoadAssignment> = resp
        .resources
        .iter()
        .map(|a| ClusterLoadAssignment::decode(a.value.as_slice()))
        .map(|r| r.map(|c| (c.cluster_name.clone(), c)))
        .collect::<Result<_, _>>()
        .context("a load assignment does not decode")?;
    for (i, name) in names.iter().enumerate() {
        let cla = by_name
            .get(name)
            .with_context(|| format!("{name}: not served"))?;
        let first = 8080 + server.revisions[i].endpoint;
        let mut want = vec![8080; mesh.endpoints.saturating_sub(1)];
        if mesh.endpoints > 0 {
            want.push(first);
        }
        want.sort_unstable();
        anyhow::ensure!(
            ports(cla) == want,
            "{name}: serves ports {:?}, its last revision has {want:?}",
            ports(cla)
        );
    }
    Ok(names.len())
}

async fn run(args: &Args, out: &mut Outcome) -> anyhow::Result<()> {
    let mut server = MeshServer::start(args.scale.mesh())
        .await
        .context("start pilot-discovery")?;
    out.baseline_rss = server.usage()?.rss;
    let fleet = Fleet::start(
        server.discovery.grpc_addr(),
        args.scale.proxies,
        args.scale.flavour,
        args.scale.namespaces,
        None,
    );
    fleet.wait_complete(DEADLINE).await.context("connect")?;
    out.connected_rss = server.usage()?.rss;
    let last = churn(&mut server, &fleet, args, out)
        .await
        .context("churn")?;
    // First the server must have applied the last change; only then does a
    // fresh proxy show what every proxy should end up holding.
    out.services_checked = wait_served(&server).await.context("served endpoints")?;
    settle(&server, &fleet, args).await.context("settle")?;
    out.settled = Some(last.elapsed());
    fleet.stop().await;
    Ok(())
}

fn report(args: &Args, o: &Outcome) -> String {
    let mb = |b: f64| format!("{:.1} MB", b / MB);
    // The first minute is warm-up: caches and allocator pools fill.
    let steady: Vec<Sample> = o
        .samples
        .iter()
        .copied()
        .filter(|s| s.secs >= 60.0)
        .collect();
    let per_sec = slope(&steady);
    let mean = steady.iter().map(|s| s.rss as f64).sum::<f64>() / steady.len().max(1) as f64;
    let growth_10min = per_sec * 600.0 / mean.max(1.0) * 100.0;
    let cpu = match (o.samples.first(), o.samples.last()) {
        (Some(a), Some(b)) if b.secs > a.secs => {
            (b.cpu_seconds - a.cpu_seconds) / (b.secs - a.secs) * 100.0
        }
        _ => 0.0,
    };
    let (min, max) = o
        .samples
        .iter()
        .fold((u64::MAX, 0), |(lo, hi), s| (lo.min(s.rss), hi.max(s.rss)));
    let verdict = if steady.len() < 2 {
        "too short to judge (under two samples after the first minute)"
    } else if growth_10min.abs() <= 2.0 {
        "flat (within ±2 %)"
    } else {
        "NOT flat"
    };
    let mut s = format!(
        "{BEGIN}\n## Soak (`make soak`)\n\n\
         {} on {}. pilot-discovery ({} build) serves a synthetic mesh of {} services × {} \
         endpoints in {} namespaces to {} simulated sidecars ({} ADS). For {} s, one \
         endpoint changes {} times a second, written as a file the server watches ({} changes). \
         The server's RSS is read every {} s.\n\n",
        today(),
        machine(),
        if cfg!(debug_assertions) {
            "debug"
        } else {
            "release"
        },
        args.scale.services,
        args.scale.endpoints,
        args.scale.namespaces,
        args.scale.proxies,
        format!("{:?}", args.scale.flavour).to_lowercase(),
        args.duration.as_secs(),
        args.churn_rate,
        o.changes,
        args.sample_every.as_secs(),
    );
    s.push_str("| Figure | Value |\n|---|---|\n");
    s.push_str(&format!(
        "| RSS before any proxy / with every proxy connected | {} / {} |\n",
        mb(o.baseline_rss as f64),
        mb(o.connected_rss as f64)
    ));
    if !o.samples.is_empty() {
        s.push_str(&format!(
            "| RSS during the churn, min / max | {} / {} |\n",
            mb(min as f64),
            mb(max as f64)
        ));
    }
    s.push_str(&format!(
        "| RSS slope after the first minute (least squares) | {:+.1} KB/min, {:+.2} % of the mean per 10 min: {} |\n",
        per_sec * 60.0 / 1024.0,
        growth_10min,
        verdict
    ));
    s.push_str(&format!(
        "| Server CPU during the churn | {cpu:.1} % of one core |\n"
    ));
    s.push_str(&format!(
        "| Every proxy holds what a fresh proxy of its namespace gets | {} |\n",
        match (o.settled, o.services_checked) {
            (Some(d), _) => format!("yes, {:.1} s after the last change", d.as_secs_f64()),
            (None, 0) => "not checked".into(),
            (None, _) => "no".into(),
        }
    ));
    s.push_str(&format!(
        "| Served endpoints are each service's last revision | {} |\n",
        if o.services_checked > 0 {
            format!("yes, all {} services", o.services_checked)
        } else if o
            .failure
            .as_deref()
            .is_some_and(|f| f.starts_with("served endpoints"))
        {
            "no".into()
        } else {
            "not checked".into()
        }
    ));
    if let Some(f) = &o.failure {
        s.push_str(&format!("\n**The soak failed**: {f}\n"));
    }
    s.push_str("\nRSS over time (seconds since the churn began, MB):\n\n```\n");
    for x in &o.samples {
        s.push_str(&format!("{:6.0} {:8.1}\n", x.secs, x.rss as f64 / MB));
    }
    s.push_str(&format!("```\n\nRegenerate with `make soak`.\n{END}\n"));
    s
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    integration_tests::init_logging();
    anyhow::ensure!(args.churn_rate > 0, "--churn-rate must be at least 1");
    let mut outcome = Outcome::default();
    let result = run(&args, &mut outcome).await;
    if let Err(e) = &result {
        outcome.failure = Some(format!("{e:#}"));
    }
    let text = report(&args, &outcome);
    let old = std::fs::read_to_string(&args.out).unwrap_or_default();
    std::fs::write(&args.out, splice(&old, BEGIN, END, &text))
        .with_context(|| format!("cannot write {}", args.out.display()))?;
    std::io::Write::write_all(&mut std::io::stdout(), text.as_bytes())?;
    result
}
