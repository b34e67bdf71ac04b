//! `make bench`, agent part: how fast pilot-agent gets Envoy serving, back
//! after a kill -9, and onto a new epoch after a watched change. Real
//! processes on loopback; the figures go into a section of BENCHMARKS.md.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Parser;
use integration_tests::benchmarks::{machine, ms, splice, spread, today};
use integration_tests::mesh::{Mesh, MeshOptions, PortPlan, REVIEWS_HOST};
use integration_tests::process::children_of;
use integration_tests::wait;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

const DEADLINE: Duration = Duration::from_secs(60);
const BEGIN: &str = "<!-- agent-bench:begin -->";
const END: &str = "<!-- agent-bench:end -->";

#[derive(Debug, Parser)]
#[command(about = "Measures pilot-agent start, restart and hot restart with a real Envoy")]
struct Args {
    /// Repetitions of each measurement; the median is reported.
    #[arg(long, default_value_t = 5)]
    runs: usize,
    /// The file whose agent section is (re)written.
    #[arg(long, default_value = "BENCHMARKS.md")]
    out: PathBuf,
}

fn examples() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../examples/mesh")
}

struct Sample {
    start: Duration,
    restart: Duration,
    hot_restart: Duration,
}

async fn one_run() -> anyhow::Result<Sample> {
    let dir = tempfile::tempdir()?;
    let watched = dir.path().join("cert.pem");
    std::fs::write(&watched, "a")?;
    let mut mesh = Mesh::start_opts(
        &examples(),
        PortPlan::Free,
        MeshOptions {
            agent_args: vec!["--watch".into(), watched.display().to_string()],
            ..MeshOptions::default()
        },
    )
    .await?;
    // Mesh::start returns once a request is routed through Envoy.
    let start = mesh.agent_started.elapsed();

    let agent = mesh.agent.pid();
    let old = *children_of(agent)
        .first()
        .context("no Envoy under the agent")?;
    let t = Instant::now();
    kill(Pid::from_raw(i32::try_from(old)?), Signal::SIGKILL)?;
    mesh.wait_routing(REVIEWS_HOST, |b| b == "v1" || b == "v2", DEADLINE)
        .await?;
    let restart = t.elapsed();

    let admin = mesh.admin();
    let t = Instant::now();
    std::fs::write(&watched, "b")?;
    wait::until("epoch 1 LIVE", DEADLINE, || async {
        let info = admin.server_info().await.map_err(|e| e.to_string())?;
        Ok((info.epoch == 1 && info.is_live()).then_some(()))
    })
    .await?;
    let hot_restart = t.elapsed();
    Ok(Sample {
        start,
        restart,
        hot_restart,
    })
}

fn section(args: &Args, samples: &[Sample]) -> String {
    let row = |name: &str, how: &str, v: Vec<Duration>| {
        let (min, med, max) = spread(v);
        format!(
            "| {name} | {} | {} | {} | {how} |\n",
            ms(med),
            ms(min),
            ms(max)
        )
    };
    let mut s = format!(
        "{BEGIN}\n## pilot-agent\n\n{} runs on {} ({}), release build, Envoy 1.40.0, \
         the example mesh on loopback. Each run starts a fresh mesh. Conditions are \
         polled every 50 ms, which bounds the resolution.\n\n\
         | Measurement | median | min | max | from → to |\n|---|---|---|---|---|\n",
        args.runs,
        machine(),
        today()
    );
    s += &row(
        "agent start → Envoy serving",
        "agent process spawned → a request routed through Envoy (discovery already up)",
        samples.iter().map(|x| x.start).collect(),
    );
    s += &row(
        "kill -9 Envoy → serving again",
        "SIGKILL → ten requests in a row routed; includes the 200 ms first restart backoff",
        samples.iter().map(|x| x.restart).collect(),
    );
    s += &row(
        "watched change → new epoch LIVE",
        "file written → admin reports epoch 1 LIVE; includes the 1 s settle time and `envoy --mode validate`",
        samples.iter().map(|x| x.hot_restart).collect(),
    );
    s += &format!("\nRegenerate with `make bench`.\n{END}\n");
    s
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    integration_tests::init_logging();
    anyhow::ensure!(args.runs > 0, "--runs must be at least 1");
    let mut samples = Vec::new();
    for i in 0..args.runs {
        let s = one_run().await.with_context(|| format!("run {}", i + 1))?;
        tracing::info!(
            run = i + 1,
            start = ?s.start,
            restart = ?s.restart,
            hot_restart = ?s.hot_restart,
            "measured"
        );
        samples.push(s);
    }
    let text = section(&args, &samples);
    let old = std::fs::read_to_string(&args.out).unwrap_or_default();
    std::fs::write(&args.out, splice(&old, BEGIN, END, &text))
        .with_context(|| format!("cannot write {}", args.out.display()))?;
    std::io::Write::write_all(&mut std::io::stdout(), text.as_bytes())?;
    Ok(())
}
