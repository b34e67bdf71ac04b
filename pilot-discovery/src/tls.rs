//! The secure xDS port's TLS settings, read from PEM files. Client
//! certificates are verified against the CA file when one is presented and,
//! with `require_client_cert`, demanded.

use std::path::{Path, PathBuf};

use tonic::transport::{Certificate, Identity, ServerTlsConfig};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// The server's certificate chain, leaf first.
    pub cert: PathBuf,
    pub key: PathBuf,
    /// Roots client certificates must chain to; without it clients are not
    /// asked for one.
    pub client_ca: Option<PathBuf>,
    pub require_client_cert: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {what} {path}: {source}")]
    Read {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{what} {path} holds no PEM {expected}")]
    NotPem {
        what: &'static str,
        path: PathBuf,
        expected: &'static str,
    },
    #[error("--require-client-cert needs --ca-cert-file to verify client certificates against")]
    RequireWithoutCa,
}

impl TlsFiles {
    /// Reads and checks the files. The contents are handed to the TLS
    /// library and never logged.
    pub fn server_config(&self) -> Result<ServerTlsConfig, TlsError> {
        if self.require_client_cert && self.client_ca.is_none() {
            return Err(TlsError::RequireWithoutCa);
        }
        let cert = read_pem("--tls-cert-file", &self.cert, "CERTIFICATE")?;
        let key = read_pem("--tls-key-file", &self.key, "PRIVATE KEY")?;
        let mut config = ServerTlsConfig::new().identity(Identity::from_pem(cert, key));
        if let Some(ca) = &self.client_ca {
            let ca = read_pem("--ca-cert-file", ca, "CERTIFICATE")?;
            config = config
                .client_ca_root(Certificate::from_pem(ca))
                .client_auth_optional(!self.require_client_cert);
        }
        Ok(config)
    }
}

/// The file's bytes, once it is known to hold a PEM block of `expected`
/// (`PRIVATE KEY` also matches `RSA PRIVATE KEY` and `EC PRIVATE KEY`), so a
/// swapped or empty file is named at start rather than failing handshakes.
fn read_pem(what: &'static str, path: &Path, expected: &'static str) -> Result<Vec<u8>, TlsError> {
    let bytes = std::fs::read(path).map_err(|source| TlsError::Read {
        what,
        path: path.to_path_buf(),
        source,
    })?;
    let text = String::from_utf8_lossy(&bytes);
    let found = text.lines().any(|l| {
        l.strip_prefix("-----BEGIN ")
            .and_then(|l| l.strip_suffix("-----"))
            .is_some_and(|label| label.ends_with(expected))
    });
    if !found {
        return Err(TlsError::NotPem {
            what,
            path: path.to_path_buf(),
            expected,
        });
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_are_checked_and_named() {
        let dir = tempfile::tempdir().expect("tempdir");
        let key = rcgen::KeyPair::generate().expect("key");
        let cert = rcgen::CertificateParams::new(vec!["istiod.istio-system.svc".into()])
            .expect("params")
            .self_signed(&key)
            .expect("cert");
        let (cert_file, key_file) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
        std::fs::write(&cert_file, cert.pem()).expect("write");
        std::fs::write(&key_file, key.serialize_pem()).expect("write");
        let files = TlsFiles {
            cert: cert_file.clone(),
            key: key_file.clone(),
            client_ca: Some(cert_file.clone()),
            require_client_cert: true,
        };
        assert!(files.server_config().is_ok());

        let swapped = TlsFiles {
            cert: key_file.clone(),
            key: cert_file.clone(),
            ..files.clone()
        };
        let e = swapped.server_config().expect_err("swapped").to_string();
        assert_eq!(
            e,
            format!(
                "--tls-cert-file {} holds no PEM CERTIFICATE",
                key_file.display()
            )
        );
        let missing = TlsFiles {
            key: dir.path().join("gone.pem"),
            ..files.clone()
        };
        let e = missing.server_config().expect_err("missing").to_string();
        assert!(e.starts_with("cannot read --tls-key-file"), "{e}");
        assert!(!e.contains("BEGIN"), "no key material in errors: {e}");
        let no_ca = TlsFiles {
            client_ca: None,
            ..files
        };
        assert!(matches!(
            no_ca.server_config(),
            Err(TlsError::RequireWithoutCa)
        ));
    }
}
