//! The size of a load run, as the load tools take it on their command line.

use super::Flavour;
use crate::synth::SynthMesh;

#[derive(Debug, Clone, clap::Args)]
pub struct Scale {
    /// Simulated proxies, one ADS stream each.
    #[arg(long, default_value_t = 1000)]
    pub proxies: usize,
    /// Services in the synthetic mesh.
    #[arg(long, default_value_t = 1000)]
    pub services: usize,
    /// Endpoints per service.
    #[arg(long, default_value_t = 10)]
    pub endpoints: usize,
    /// Namespaces the services and proxies are spread over.
    #[arg(long, default_value_t = 10)]
    pub namespaces: usize,
    #[arg(long, default_value = "delta")]
    pub flavour: Flavour,
}

impl Scale {
    pub fn mesh(&self) -> SynthMesh {
        SynthMesh::new(self.services, self.endpoints, self.namespaces)
    }
}
