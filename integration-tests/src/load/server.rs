//! A pilot-discovery process serving a synthetic mesh from a temp folder,
//! which the load tools change service by service.

use std::path::PathBuf;
use std::time::Instant;

use crate::discovery::Discovery;
use crate::procstat::{usage, Usage};
use crate::synth::{Revision, SynthMesh};

pub struct MeshServer {
    pub discovery: Discovery,
    pub mesh: SynthMesh,
    dir: PathBuf,
    /// What each service is at now.
    pub revisions: Vec<Revision>,
    _work: tempfile::TempDir,
}

impl MeshServer {
    pub async fn start(mesh: SynthMesh) -> anyhow::Result<MeshServer> {
        let work = tempfile::Builder::new().prefix("xds-mesh-").tempdir()?;
        let dir = work.path().join("mesh");
        mesh.write(&dir)?;
        let discovery = Discovery::start(&dir, &work.path().join("discovery.log"), &[]).await?;
        Ok(MeshServer {
            discovery,
            mesh,
            dir,
            revisions: vec![Revision::default(); mesh.services],
            _work: work,
        })
    }

    /// The server process's CPU time and memory now.
    pub fn usage(&self) -> anyhow::Result<Usage> {
        usage(self.discovery.pid())
    }

    /// Applies a change to service `i` and returns when it was written.
    pub fn change(
        &mut self,
        i: usize,
        edit: impl FnOnce(&mut Revision),
    ) -> anyhow::Result<Instant> {
        edit(&mut self.revisions[i]);
        self.mesh.write_service(&self.dir, i, self.revisions[i])?;
        Ok(Instant::now())
    }
}
