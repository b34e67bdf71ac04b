//! `synth-mesh`: writes the synthetic mesh `make bench` measures as a config
//! folder, so a run of `pilot-discovery` and `xds-load` can be reproduced or
//! profiled by hand.

use std::path::PathBuf;

use clap::Parser;
use integration_tests::synth::SynthMesh;

#[derive(Debug, Parser)]
#[command(
    name = "synth-mesh",
    about = "Writes N services x K endpoints, each with a DestinationRule and a VirtualService, as a config folder"
)]
struct Args {
    /// The folder to write (created if missing; existing service files are replaced).
    #[arg(long)]
    out: PathBuf,
    #[arg(long, default_value_t = 1000)]
    services: usize,
    #[arg(long, default_value_t = 10)]
    endpoints: usize,
    #[arg(long, default_value_t = 10)]
    namespaces: usize,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    SynthMesh::new(args.services, args.endpoints, args.namespaces).write(&args.out)
}
