//! Who a proxy is, by its TLS client certificate: the SPIFFE identity
//! (`spiffe://<trust-domain>/ns/<namespace>/sa/<service-account>`) in the
//! certificate's URI subject alternative names. A proxy with such an
//! identity may only ask for config as a proxy of that namespace, as
//! Istio's connection authentication checks.

use mesh_model::{SpiffeId, SpiffeIdError};
use tonic::transport::CertificateDer;
use x509_parser::extensions::GeneralName;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdentityError {
    #[error("the client certificate cannot be read: {0}")]
    Certificate(String),
    #[error(transparent)]
    Malformed(#[from] SpiffeIdError),
}

/// The SPIFFE identity of the client whose chain is `certs` (leaf first);
/// `None` when there is no certificate or it names no SPIFFE identity.
pub fn of_peer(certs: Option<&[CertificateDer<'_>]>) -> Result<Option<SpiffeId>, IdentityError> {
    let Some(leaf) = certs.and_then(|c| c.first()) else {
        return Ok(None);
    };
    let (_, cert) = x509_parser::parse_x509_certificate(leaf.as_ref())
        .map_err(|e| IdentityError::Certificate(e.to_string()))?;
    let san = cert
        .subject_alternative_name()
        .map_err(|e| IdentityError::Certificate(e.to_string()))?;
    san.iter()
        .flat_map(|ext| ext.value.general_names.iter())
        .find_map(|n| match n {
            GeneralName::URI(uri) if uri.starts_with("spiffe://") => Some(*uri),
            _ => None,
        })
        .map(|uri| uri.parse().map_err(IdentityError::from))
        .transpose()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{CertificateParams, KeyPair, SanType};

    fn cert_with(sans: Vec<SanType>) -> CertificateDer<'static> {
        let mut params = CertificateParams::default();
        params.subject_alt_names = sans;
        let key = KeyPair::generate().expect("key");
        params.self_signed(&key).expect("cert").der().clone()
    }

    fn uri(s: &str) -> SanType {
        SanType::URI(s.try_into().expect("ia5 string"))
    }

    #[test]
    fn reads_the_spiffe_uri_of_the_leaf() {
        let cert = cert_with(vec![
            SanType::DnsName("web.shop.svc".try_into().expect("dns")),
            uri("spiffe://cluster.local/ns/shop/sa/web"),
        ]);
        let id = of_peer(Some(&[cert]))
            .expect("readable")
            .expect("an identity");
        assert_eq!(id.namespace, "shop");
        assert_eq!(id.service_account, "web");
        assert_eq!(id.to_string(), "spiffe://cluster.local/ns/shop/sa/web");
    }

    #[test]
    fn no_certificate_or_no_spiffe_uri_is_no_identity() {
        assert_eq!(of_peer(None), Ok(None));
        let dns_only = cert_with(vec![SanType::DnsName("a.b".try_into().expect("dns"))]);
        assert_eq!(of_peer(Some(&[dns_only])), Ok(None));
        let other_uri = cert_with(vec![uri("https://example.com/x")]);
        assert_eq!(of_peer(Some(&[other_uri])), Ok(None));
    }

    #[test]
    fn a_malformed_spiffe_uri_is_an_error() {
        for bad in [
            "spiffe://cluster.local/ns/shop",
            "spiffe://cluster.local/sa/web/ns/shop",
            "spiffe:///ns/shop/sa/web",
            "spiffe://td/ns//sa/web",
        ] {
            let cert = cert_with(vec![uri(bad)]);
            assert!(
                matches!(of_peer(Some(&[cert])), Err(IdentityError::Malformed(_))),
                "{bad}"
            );
        }
        let garbage = CertificateDer::from(vec![0x30, 0x03, 0x01, 0x01, 0xff]);
        assert!(matches!(
            of_peer(Some(&[garbage])),
            Err(IdentityError::Certificate(_))
        ));
    }
}
