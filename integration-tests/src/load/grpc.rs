//! One bidirectional gRPC stream, read without tonic's decoder.
//!
//! tonic keeps each stream's decode buffer at the size of the largest
//! message the stream has received, for as long as the stream lives: for a
//! simulated sidecar that is its route configuration (about 0.5 MB at 1,000
//! services), so 1,000 proxies kept about 0.6 GB of buffers in the process
//! that shares the machine with the server it measures. Here a message that
//! arrives in one HTTP/2 frame is decoded from that frame, and one spread
//! over several is put together in a buffer of its own size, freed with the
//! message.

use std::collections::VecDeque;
use std::convert::Infallible;

use anyhow::Context;
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use prost::bytes::{Buf, BufMut, Bytes, BytesMut};
use prost::Message;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::StreamExt;
use tonic::body::Body;
use tonic::codegen::Service;
use tonic::transport::Channel;

/// The gRPC message header: a compression flag and a big-endian length.
const HEADER: usize = 5;

/// Requests queued before `send` waits for the stream to take them.
const QUEUE: usize = 16;

/// The sending half: requests, encoded as gRPC messages.
#[derive(Clone)]
pub struct Outbound {
    tx: mpsc::Sender<Bytes>,
}

impl Outbound {
    pub async fn send(&self, msg: &impl Message) -> anyhow::Result<()> {
        self.tx
            .send(frame(msg))
            .await
            .context("the stream is closed")
    }
}

/// `msg` as one length-prefixed, uncompressed gRPC message.
pub fn frame(msg: &impl Message) -> Bytes {
    let len = msg.encoded_len();
    let mut buf = BytesMut::with_capacity(HEADER + len);
    buf.put_u8(0);
    buf.put_u32(u32::try_from(len).unwrap_or(u32::MAX));
    // Encoding into a buffer reserved for its exact length cannot fail.
    let _ = msg.encode(&mut buf);
    buf.freeze()
}

/// Opens a streaming call to `path` on `channel`, its body starting with
/// `first`. They are queued before the call is made: a server may send no
/// response headers until it has a request (grpc-go servers, istiod among
/// them, do not), and the call returns only once the headers have come.
pub async fn open<M: Message>(
    channel: &Channel,
    path: &str,
    first: &[M],
) -> anyhow::Result<(Outbound, Inbound)> {
    let (tx, rx) = mpsc::channel::<Bytes>(QUEUE.max(first.len()));
    for msg in first {
        tx.send(frame(msg))
            .await
            .context("queueing the first requests")?;
    }
    let requests = ReceiverStream::new(rx).map(|b| Ok::<_, Infallible>(Frame::data(b)));
    let request = http::Request::builder()
        .method(http::Method::POST)
        .uri(path)
        .header(http::header::CONTENT_TYPE, "application/grpc")
        .header(http::header::TE, "trailers")
        .body(Body::new(StreamBody::new(requests)))
        .context("building the request")?;
    let mut channel = channel.clone();
    std::future::poll_fn(|cx| channel.poll_ready(cx))
        .await
        .context("channel not ready")?;
    let response = channel.call(request).await.context("stream refused")?;
    let (head, body) = response.into_parts();
    if head.status != http::StatusCode::OK {
        anyhow::bail!("stream refused: HTTP status {}", head.status);
    }
    // A call refused outright answers with its status in the headers.
    grpc_status(&head.headers)?;
    Ok((Outbound { tx }, Inbound::new(body)))
}

/// An error for a non-zero `grpc-status`, with its message.
fn grpc_status(headers: &http::HeaderMap) -> anyhow::Result<()> {
    let Some(code) = headers.get("grpc-status") else {
        return Ok(());
    };
    if code == "0" {
        return Ok(());
    }
    let message = headers
        .get("grpc-message")
        .and_then(|m| m.to_str().ok())
        .unwrap_or("");
    anyhow::bail!(
        "the server ended the stream with grpc-status {}: {message}",
        code.to_str().unwrap_or("?")
    )
}

/// The receiving half: the response body, as messages.
pub struct Inbound {
    body: Body,
    /// Received bytes not yet taken, in order.
    chunks: VecDeque<Bytes>,
    buffered: usize,
    ended: bool,
}

impl Inbound {
    pub fn new(body: Body) -> Self {
        Inbound {
            body,
            chunks: VecDeque::new(),
            buffered: 0,
            ended: false,
        }
    }

    /// The next message, or `None` once the stream has ended cleanly.
    pub async fn message<M: Message + Default>(&mut self) -> anyhow::Result<Option<M>> {
        match self.next().await? {
            Some(bytes) => M::decode(bytes).map(Some).context("undecodable message"),
            None => Ok(None),
        }
    }

    /// The next message's encoding, or `None` once the stream has ended
    /// cleanly.
    pub async fn next(&mut self) -> anyhow::Result<Option<Bytes>> {
        if !self.fill(HEADER).await? {
            if self.buffered == 0 {
                return Ok(None);
            }
            anyhow::bail!("the stream ended inside a message header");
        }
        let mut header = self.take(HEADER);
        let compressed = header.get_u8();
        let len = header.get_u32() as usize;
        if compressed != 0 {
            anyhow::bail!("a compressed message, which was not asked for");
        }
        if !self.fill(len).await? {
            anyhow::bail!(
                "the stream ended {} bytes into a message of {len}",
                self.buffered
            );
        }
        Ok(Some(self.take(len)))
    }

    /// Reads until `n` bytes are buffered; false if the stream ends first.
    async fn fill(&mut self, n: usize) -> anyhow::Result<bool> {
        while self.buffered < n {
            if self.ended {
                return Ok(false);
            }
            match self.body.frame().await {
                None => self.ended = true,
                Some(frame) => {
                    let frame = frame.context("stream failed")?;
                    match frame.into_data() {
                        Ok(data) => {
                            self.buffered += data.len();
                            if !data.is_empty() {
                                self.chunks.push_back(data);
                            }
                        }
                        Err(frame) => {
                            if let Some(trailers) = frame.trailers_ref() {
                                grpc_status(trailers)?;
                            }
                        }
                    }
                }
            }
        }
        Ok(true)
    }

    /// Takes `n` buffered bytes (`n <= buffered`): a view of the first
    /// chunk when it holds them all, else a copy of exactly `n` bytes.
    fn take(&mut self, n: usize) -> Bytes {
        self.buffered -= n;
        if let Some(first) = self.chunks.front_mut() {
            if first.len() >= n {
                let out = first.split_to(n);
                if first.is_empty() {
                    self.chunks.pop_front();
                }
                return out;
            }
        }
        let mut out = BytesMut::with_capacity(n);
        while out.len() < n {
            let Some(first) = self.chunks.front_mut() else {
                break;
            };
            let want = (n - out.len()).min(first.len());
            out.extend_from_slice(&first.split_to(want));
            if first.is_empty() {
                self.chunks.pop_front();
            }
        }
        out.freeze()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use xds_proto::pb::envoy::service::discovery::v3::DiscoveryResponse;

    fn response(version: &str, bytes: usize) -> DiscoveryResponse {
        DiscoveryResponse {
            version_info: version.to_string(),
            nonce: "x".repeat(bytes),
            ..Default::default()
        }
    }

    /// A body of `wire` cut into chunks of `sizes` (cycled), then `trailers`.
    fn body(wire: Bytes, sizes: &[usize], trailers: Option<(&str, &str)>) -> Body {
        let mut frames = Vec::new();
        let mut rest = wire;
        let mut i = 0;
        while !rest.is_empty() {
            let n = sizes[i % sizes.len()].min(rest.len());
            frames.push(Frame::data(rest.split_to(n)));
            i += 1;
        }
        if let Some((code, message)) = trailers {
            let mut map = http::HeaderMap::new();
            map.insert("grpc-status", code.parse().expect("header value"));
            map.insert("grpc-message", message.parse().expect("header value"));
            frames.push(Frame::trailers(map));
        }
        let stream = tokio_stream::iter(frames.into_iter().map(Ok::<_, Infallible>));
        Body::new(StreamBody::new(stream))
    }

    #[tokio::test]
    async fn messages_are_read_whatever_the_frames_cut_them_into() {
        let sent = [response("1", 10), response("2", 40_000), response("3", 0)];
        let mut wire = BytesMut::new();
        for m in &sent {
            wire.extend_from_slice(&frame(m));
        }
        let wire = wire.freeze();
        for sizes in [&[1][..], &[3, 16_384], &[wire.len()], &[7, 1, 50_000]] {
            let mut inbound = Inbound::new(body(wire.clone(), sizes, Some(("0", ""))));
            for m in &sent {
                let got: Option<DiscoveryResponse> = inbound.message().await.expect("decodes");
                assert_eq!(got.as_ref(), Some(m), "cut into {sizes:?}");
            }
            let end: Option<DiscoveryResponse> = inbound.message().await.expect("clean end");
            assert!(end.is_none(), "cut into {sizes:?}");
        }
    }

    #[tokio::test]
    async fn an_error_status_or_a_cut_message_is_an_error() {
        let wire = frame(&response("1", 100));
        let mut failed = Inbound::new(body(wire.clone(), &[16], Some(("13", "boom"))));
        let first: Option<DiscoveryResponse> = failed.message().await.expect("decodes");
        assert!(first.is_some());
        let err = failed
            .message::<DiscoveryResponse>()
            .await
            .expect_err("grpc-status 13");
        assert!(
            format!("{err:#}").contains("grpc-status 13: boom"),
            "{err:#}"
        );

        let cut = wire.slice(..wire.len() - 1);
        let mut short = Inbound::new(body(cut, &[16], None));
        let err = short
            .message::<DiscoveryResponse>()
            .await
            .expect_err("the stream ends inside the message");
        assert!(format!("{err:#}").contains("ended"), "{err:#}");
    }
}
