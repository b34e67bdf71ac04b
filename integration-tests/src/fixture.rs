//! pilot-discovery alone on a temporary copy of the example folder, for
//! tests that talk to it with a raw ADS client.

use std::path::{Path, PathBuf};

use anyhow::Context;

use crate::discovery::Discovery;

pub struct ConfigFixture {
    pub discovery: Discovery,
    pub config: PathBuf,
    _work: tempfile::TempDir,
}

impl ConfigFixture {
    /// Copies `examples/mesh`, adds `extra_files` (name, contents) and starts
    /// pilot-discovery on the copy with `flags`.
    pub async fn start(extra_files: &[(&str, String)], flags: &[&str]) -> anyhow::Result<Self> {
        let work = tempfile::Builder::new()
            .prefix("pilot-xds-")
            .tempdir()
            .context("cannot create a temporary folder")?;
        let config = work.path().join("config");
        std::fs::create_dir_all(&config)?;
        let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/mesh");
        for entry in std::fs::read_dir(&examples)
            .with_context(|| format!("cannot read {}", examples.display()))?
        {
            let path = entry?.path();
            if let Some(name) = path.file_name() {
                std::fs::copy(&path, config.join(name))?;
            }
        }
        for (name, text) in extra_files {
            std::fs::write(config.join(name), text)?;
        }
        let discovery =
            Discovery::start(&config, &work.path().join("discovery.log"), flags).await?;
        Ok(ConfigFixture {
            discovery,
            config,
            _work: work,
        })
    }

    pub fn write(&self, name: &str, text: &str) -> anyhow::Result<()> {
        let path = self.config.join(name);
        std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))
    }

    pub fn remove(&self, name: &str) -> anyhow::Result<()> {
        let path = self.config.join(name);
        std::fs::remove_file(&path).with_context(|| format!("cannot remove {}", path.display()))
    }
}

/// A MESH_EXTERNAL ServiceEntry `<name>.example.com` on `port`: adding one
/// adds a cluster, so it makes a full push.
pub fn service_entry(name: &str, port: u16) -> String {
    format!(
        "apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: {name}, namespace: default}}
spec:
  hosts: [{name}.example.com]
  location: MESH_EXTERNAL
  resolution: STATIC
  ports: [{{number: {port}, name: http, protocol: HTTP}}]
  endpoints: [{{address: 127.0.0.1}}]
"
    )
}
