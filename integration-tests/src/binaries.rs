//! Where the binaries under test are.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};

/// A workspace binary (`pilot-discovery`, `pilot-agent`): `$<NAME>_BIN` if
/// set, else next to the running executable in Cargo's target folder.
pub fn workspace_binary(name: &str) -> anyhow::Result<PathBuf> {
    let var = format!("{}_BIN", name.to_ascii_uppercase().replace('-', "_"));
    if let Ok(p) = std::env::var(&var) {
        return Ok(PathBuf::from(p));
    }
    let exe = std::env::current_exe().context("cannot locate the running executable")?;
    // target/debug/demo, or target/debug/deps/<test>-<hash>
    for dir in exe.ancestors().skip(1).take(2) {
        let candidate = dir.join(name);
        if candidate.is_file() {
            return Ok(candidate);
        }
    }
    bail!("{name} is not built next to {}; run `cargo build --workspace --bins` (or `make build`), or set {var}", exe.display())
}

/// Envoy: `$ENVOY_BIN`, else the copy `make tools` installs.
pub fn envoy() -> anyhow::Result<PathBuf> {
    if let Ok(p) = std::env::var("ENVOY_BIN") {
        return Ok(PathBuf::from(p));
    }
    let installed = Path::new(env!("CARGO_MANIFEST_DIR")).join("../.tools/bin/envoy");
    if installed.exists() {
        return Ok(installed);
    }
    bail!("Envoy not found: run `make tools`, or set ENVOY_BIN")
}
