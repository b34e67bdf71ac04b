use crate::protobuf::Any;
use prost::{Message, Name};

#[derive(Debug, thiserror::Error)]
pub enum AnyError {
    #[error("expected type URL {expected}, got {actual}")]
    WrongType { expected: String, actual: String },
    #[error("cannot decode {type_url}: {source}")]
    Decode {
        type_url: String,
        #[source]
        source: prost::DecodeError,
    },
}

/// Wraps a message in `Any` with its canonical `type.googleapis.com/` URL.
pub fn pack<M: Message + Name>(message: &M) -> Any {
    Any {
        type_url: M::type_url(),
        value: message.encode_to_vec(),
    }
}

/// Decodes an `Any`, checking that it holds an `M`.
pub fn unpack<M: Message + Name + Default>(any: &Any) -> Result<M, AnyError> {
    let expected = M::type_url();
    if any.type_url != expected {
        return Err(AnyError::WrongType {
            expected,
            actual: any.type_url.clone(),
        });
    }
    M::decode(any.value.as_slice()).map_err(|source| AnyError::Decode {
        type_url: expected,
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pb::envoy::config::cluster::v3::Cluster;
    use crate::pb::envoy::config::listener::v3::Listener;

    #[test]
    fn round_trip() {
        let cluster = Cluster {
            name: "outbound|80||a.default.svc.cluster.local".into(),
            ..Default::default()
        };
        let any = pack(&cluster);
        assert_eq!(any.type_url, crate::type_url::CLUSTER);
        let back: Cluster = unpack(&any).expect("decodes");
        assert_eq!(back, cluster);
    }

    #[test]
    fn wrong_type_is_an_error() {
        let any = pack(&Cluster::default());
        let err = unpack::<Listener>(&any).expect_err("must not decode a cluster as a listener");
        assert!(matches!(err, AnyError::WrongType { .. }), "{err}");
    }

    #[test]
    fn corrupt_bytes_are_an_error() {
        let any = Any {
            type_url: crate::type_url::CLUSTER.to_string(),
            value: vec![0xff, 0xff, 0xff],
        };
        assert!(matches!(
            unpack::<Cluster>(&any),
            Err(AnyError::Decode { .. })
        ));
    }
}
