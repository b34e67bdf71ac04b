//! Connections accepted on the xDS ports.
//!
//! A push is one small write per stream, and the next one often follows
//! before the proxy has acknowledged the last at the TCP level. With Nagle's
//! algorithm on, the kernel holds such a write back until that
//! acknowledgement arrives, which a delayed ACK can put off by up to 40 ms.
//! Go's net package (and so Istio's pilot) and Envoy turn Nagle off on
//! every connection; tonic does too, but only on listeners it binds itself.

use futures::{Stream, StreamExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_stream::wrappers::TcpListenerStream;

/// The connections `listener` accepts, each with Nagle's algorithm off.
pub fn without_nagle(listener: TcpListener) -> impl Stream<Item = std::io::Result<TcpStream>> {
    TcpListenerStream::new(listener).map(|accepted| {
        accepted.inspect(|stream| {
            // The connection still works with Nagle on, only later; it is
            // not worth refusing the proxy over.
            if let Err(error) = stream.set_nodelay(true) {
                tracing::warn!(%error, peer = ?stream.peer_addr().ok(), "cannot turn Nagle's algorithm off");
            }
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn accepted_connections_have_nagle_off() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("address");
        let mut incoming = Box::pin(without_nagle(listener));
        let _client = TcpStream::connect(addr).await.expect("connect");
        let accepted = tokio::time::timeout(Duration::from_secs(10), incoming.next())
            .await
            .expect("accepted in time")
            .expect("a connection")
            .expect("accepted");
        assert!(accepted.nodelay().expect("read TCP_NODELAY"));
    }
}
