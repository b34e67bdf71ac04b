//! gRPC framing of a server stream's responses, each in its own buffer.
//!
//! tonic's generated servers encode every message of a stream into one
//! growable buffer that keeps the capacity of the largest message for as
//! long as the stream lives. An ADS stream lives for hours and its first
//! responses are its largest (a route configuration alone can weigh
//! hundreds of kilobytes at 1,000 services), so every connected proxy kept
//! that much memory for nothing. Here each response is encoded into a
//! buffer of exactly its size, handed to the HTTP/2 layer and freed once
//! written.

use std::pin::Pin;
use std::task::{Context, Poll};

use http_body::Frame;
use prost::Message;
use tokio::sync::mpsc;
use tonic::codegen::{http, Bytes};
use tonic::Status;

/// The 5-byte prefix of every gRPC message: a compression flag (never set
/// here) and the length, big-endian.
const PREFIX: usize = 5;

/// The body of a streaming gRPC response: one data frame per message
/// received on the channel, then the trailers that carry the status: OK
/// when the channel closes, or the error the channel ends with.
pub struct ResponseBody<M> {
    messages: mpsc::Receiver<Result<M, Status>>,
    max_message_bytes: usize,
    finished: bool,
}

impl<M: Message> ResponseBody<M> {
    pub fn new(messages: mpsc::Receiver<Result<M, Status>>, max_message_bytes: usize) -> Self {
        ResponseBody {
            messages,
            max_message_bytes,
            finished: false,
        }
    }

    /// The HTTP response that starts the stream.
    pub fn into_response(self) -> http::Response<tonic::body::Body>
    where
        M: Send + 'static,
    {
        let mut response = http::Response::new(tonic::body::Body::new(self));
        response.headers_mut().insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("application/grpc"),
        );
        response
    }
}

/// One message with its gRPC prefix, in a buffer of exactly its size.
pub fn frame<M: Message>(message: &M, max_message_bytes: usize) -> Result<Bytes, Status> {
    let len = message.encoded_len();
    let prefix_len = u32::try_from(len)
        .ok()
        .filter(|_| len <= max_message_bytes)
        .ok_or_else(|| {
            Status::resource_exhausted(format!(
                "a response of {len} bytes is over the {max_message_bytes}-byte limit"
            ))
        })?;
    let mut buf = Vec::with_capacity(PREFIX + len);
    buf.push(0);
    buf.extend_from_slice(&prefix_len.to_be_bytes());
    message
        .encode(&mut buf)
        .map_err(|e| Status::internal(format!("encoding a response: {e}")))?;
    Ok(Bytes::from(buf))
}

/// The trailers that end the stream with `status`.
fn trailers(status: &Status) -> http::HeaderMap {
    let mut map = http::HeaderMap::new();
    if status.add_header(&mut map).is_err() {
        // Only a message that cannot be a header value gets here; the code
        // alone still tells the proxy what happened.
        map.insert("grpc-status", http::HeaderValue::from(status.code() as i32));
    }
    map
}

impl<M: Message> http_body::Body for ResponseBody<M> {
    type Data = Bytes;
    type Error = Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
        if self.finished {
            return Poll::Ready(None);
        }
        let end = match self.messages.poll_recv(cx) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(Some(Ok(message))) => match frame(&message, self.max_message_bytes) {
                Ok(bytes) => return Poll::Ready(Some(Ok(Frame::data(bytes)))),
                Err(status) => {
                    tracing::warn!(%status, "ending a stream: a response cannot be sent");
                    status
                }
            },
            Poll::Ready(Some(Err(status))) => status,
            Poll::Ready(None) => Status::ok(""),
        };
        self.finished = true;
        // Nothing more is read from the channel: the task feeding it sees
        // the stream closed.
        self.messages.close();
        Poll::Ready(Some(Ok(Frame::trailers(trailers(&end)))))
    }

    fn is_end_stream(&self) -> bool {
        self.finished
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;
    use xds_proto::pb::envoy::service::discovery::v3::DiscoveryResponse;

    fn response(version: &str) -> DiscoveryResponse {
        DiscoveryResponse {
            version_info: version.into(),
            nonce: "n".into(),
            ..Default::default()
        }
    }

    /// Every frame of a body whose channel got `sent` and was then closed.
    async fn frames(sent: Vec<Result<DiscoveryResponse, Status>>, max: usize) -> Vec<Frame<Bytes>> {
        let (tx, rx) = mpsc::channel(sent.len().max(1));
        for m in sent {
            tx.send(m).await.expect("queued");
        }
        drop(tx);
        let mut body = ResponseBody::new(rx, max);
        let mut out = Vec::new();
        while let Some(f) = body.frame().await {
            out.push(f.expect("frame"));
        }
        out
    }

    fn unframe(data: &Bytes) -> DiscoveryResponse {
        assert_eq!(data[0], 0, "not compressed");
        let len = u32::from_be_bytes([data[1], data[2], data[3], data[4]]) as usize;
        assert_eq!(len, data.len() - PREFIX, "length prefix");
        DiscoveryResponse::decode(&data[PREFIX..]).expect("decodes")
    }

    fn status_of(f: &Frame<Bytes>) -> Status {
        let t = f.trailers_ref().expect("trailers");
        Status::from_header_map(t).expect("a grpc-status trailer")
    }

    #[tokio::test]
    async fn messages_are_framed_one_per_buffer_then_ok() {
        let sent = vec![Ok(response("1")), Ok(response("2"))];
        let f = frames(sent, 1 << 20).await;
        assert_eq!(f.len(), 3);
        for (i, v) in ["1", "2"].iter().enumerate() {
            let data = f[i].data_ref().expect("data");
            assert_eq!(unframe(data).version_info, *v);
        }
        assert_eq!(status_of(&f[2]).code(), tonic::Code::Ok);
    }

    #[tokio::test]
    async fn an_error_ends_the_stream_with_its_status() {
        let sent = vec![
            Ok(response("1")),
            Err(Status::unavailable("shutting down")),
            Ok(response("never sent")),
        ];
        let f = frames(sent, 1 << 20).await;
        assert_eq!(f.len(), 2);
        let s = status_of(&f[1]);
        assert_eq!(s.code(), tonic::Code::Unavailable);
        assert_eq!(s.message(), "shutting down");
    }

    #[tokio::test]
    async fn an_oversized_response_ends_the_stream_instead_of_being_sent() {
        let big = response(&"x".repeat(200));
        let f = frames(vec![Ok(response("1")), Ok(big)], 100).await;
        assert_eq!(f.len(), 2);
        let s = status_of(&f[1]);
        assert_eq!(s.code(), tonic::Code::ResourceExhausted);
        assert!(s.message().contains("100-byte limit"), "{}", s.message());
    }
}
