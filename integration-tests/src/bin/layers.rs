//! `make lint`'s layering check: exits 1 listing every import cycle between
//! files and every pilot-discovery import against the layers.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;

#[derive(Parser)]
#[command(
    about = "Checks the workspace's imports: no cycle between files, and pilot-discovery's layers"
)]
struct Args {
    /// The workspace root.
    #[arg(long, default_value = ".")]
    root: PathBuf,
}

fn main() -> anyhow::Result<ExitCode> {
    let args = Args::parse();
    let violations = integration_tests::layering::check(&args.root)
        .with_context(|| format!("cannot check the imports under {}", args.root.display()))?;
    if violations.is_empty() {
        eprintln!("layers: no import cycle, every import follows the layers");
        return Ok(ExitCode::SUCCESS);
    }
    for v in &violations {
        eprintln!("{v}");
    }
    eprintln!(
        "layers: {} violations (the layers are in ARCHITECTURE.md)",
        violations.len()
    );
    Ok(ExitCode::FAILURE)
}
