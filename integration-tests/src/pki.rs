//! A throwaway certificate authority for TLS tests: a root, server
//! certificates (discovery's, the test API server's), and client
//! certificates carrying workload identities, written as PEM files.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use anyhow::Context;
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, SanType};

/// The name discovery's certificate carries, as Istio's istiod does.
pub const SERVER_NAME: &str = "istiod.istio-system.svc";

pub struct TestPki {
    dir: PathBuf,
    ca: CertifiedIssuer<'static, KeyPair>,
    /// The root certificate, `ca.pem` in the folder.
    pub ca_file: PathBuf,
}

/// A certificate and its key, as files.
pub struct CertFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl TestPki {
    /// A new CA in `dir`.
    pub fn create(dir: &Path) -> anyhow::Result<TestPki> {
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, "pilot-tests-ca");
        let ca = CertifiedIssuer::self_signed(params, KeyPair::generate()?)?;
        let ca_file = dir.join("ca.pem");
        write(&ca_file, &ca.pem())?;
        Ok(TestPki {
            dir: dir.to_path_buf(),
            ca,
            ca_file,
        })
    }

    /// A server certificate for `hosts`, each a DNS name or an IP address.
    pub fn server(&self, name: &str, hosts: &[&str]) -> anyhow::Result<CertFiles> {
        let sans = hosts
            .iter()
            .map(|h| match h.parse::<IpAddr>() {
                Ok(ip) => Ok(SanType::IpAddress(ip)),
                Err(_) => Ok(SanType::DnsName((*h).try_into()?)),
            })
            .collect::<anyhow::Result<_>>()?;
        self.issue(name, sans)
    }

    /// A client certificate for the workload identity `spiffe`
    /// (`spiffe://...`), or with no identity at all.
    pub fn client(&self, name: &str, spiffe: Option<&str>) -> anyhow::Result<CertFiles> {
        let sans = match spiffe {
            Some(uri) => vec![SanType::URI(uri.try_into()?)],
            None => vec![SanType::DnsName(format!("{name}.test").try_into()?)],
        };
        self.issue(name, sans)
    }

    fn issue(&self, name: &str, sans: Vec<SanType>) -> anyhow::Result<CertFiles> {
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::default();
        params.subject_alt_names = sans;
        params.distinguished_name.push(DnType::CommonName, name);
        let cert = params.signed_by(&key, &self.ca)?;
        let files = CertFiles {
            cert: self.dir.join(format!("{name}-cert.pem")),
            key: self.dir.join(format!("{name}-key.pem")),
        };
        write(&files.cert, &cert.pem())?;
        write(&files.key, &key.serialize_pem())?;
        Ok(files)
    }
}

fn write(path: &Path, text: &str) -> anyhow::Result<()> {
    std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))
}

/// The base64 body lines of every PEM file in `files`: what must never show
/// up in a log.
pub fn secret_lines(files: &[&Path]) -> anyhow::Result<Vec<String>> {
    let mut out = Vec::new();
    for f in files {
        let text =
            std::fs::read_to_string(f).with_context(|| format!("cannot read {}", f.display()))?;
        out.extend(
            text.lines()
                .filter(|l| !l.starts_with("-----") && l.len() > 20)
                .map(str::to_string),
        );
    }
    Ok(out)
}
