//! gRPC framing of a server stream: requests read and responses written
//! each in a buffer of its own.
//!
//! tonic's generated servers encode every message of a stream into one
//! growable buffer that keeps the capacity of the largest message for as
//! long as the stream lives. An ADS stream lives for hours and its first
//! responses are its largest (a route configuration alone can weigh
//! hundreds of kilobytes at 1,000 services), so every connected proxy kept
//! that much memory for nothing. Here each response is encoded into a
//! buffer of exactly its size, handed to the HTTP/2 layer and freed once
//! written. Requests are read the same way: tonic's reader keeps a buffer
//! the size of the largest request (a proxy's subscription to every
//! endpoint of the mesh), this one frees each request's bytes once decoded.

use std::future::poll_fn;
use std::pin::Pin;
use std::task::{Context, Poll};

use http_body::{Body, Frame};
use prost::Message;
use tokio::sync::mpsc;
use tonic::codegen::{http, Bytes};
use tonic::Status;

/// A message a stream writes: Envoy's prost messages, and the responses
/// written straight from shared resources (`xds/response.rs`).
pub trait Encode {
    /// The exact size [`Encode::encode_to`] appends.
    fn encoded_len(&self) -> usize;
    fn encode_to(&self, buf: &mut Vec<u8>);
}

impl<M: Message> Encode for M {
    fn encoded_len(&self) -> usize {
        Message::encoded_len(self)
    }

    fn encode_to(&self, buf: &mut Vec<u8>) {
        // A Vec grows as needed, so encoding into one cannot run out of room.
        let _ = self.encode(buf);
    }
}

/// The 5-byte prefix of every gRPC message: a compression flag (never set
/// here) and the length, big-endian.
const PREFIX: usize = 5;

/// The messages of a streaming gRPC request.
pub struct Requests<M> {
    body: tonic::body::Body,
    /// Bytes received and not yet decoded: at most one message and the
    /// start of the next.
    pending: Vec<u8>,
    max_message_bytes: usize,
    _message: std::marker::PhantomData<fn() -> M>,
}

impl<M: Message + Default> Requests<M> {
    pub fn new(body: tonic::body::Body, max_message_bytes: usize) -> Self {
        Requests {
            body,
            pending: Vec::new(),
            max_message_bytes,
            _message: std::marker::PhantomData,
        }
    }

    /// The next request, or `None` once the client has closed its side.
    pub async fn message(&mut self) -> Result<Option<M>, Status> {
        loop {
            if let Some(message) = self.decode_pending()? {
                return Ok(Some(message));
            }
            let frame = poll_fn(|cx| Pin::new(&mut self.body).poll_frame(cx)).await;
            match frame {
                Some(Ok(frame)) => {
                    if let Some(data) = frame.data_ref() {
                        self.pending.extend_from_slice(data);
                    }
                }
                Some(Err(status)) => return Err(status),
                None if self.pending.is_empty() => return Ok(None),
                None => {
                    return Err(Status::invalid_argument(
                        "the request stream ended in the middle of a message",
                    ))
                }
            }
        }
    }

    /// Takes the first message out of `pending` once all of it is there.
    fn decode_pending(&mut self) -> Result<Option<M>, Status> {
        let Some(prefix) = self.pending.get(..PREFIX) else {
            return Ok(None);
        };
        if prefix[0] != 0 {
            return Err(Status::unimplemented(
                "compressed requests are not supported",
            ));
        }
        let len = u32::from_be_bytes([prefix[1], prefix[2], prefix[3], prefix[4]]) as usize;
        if len > self.max_message_bytes {
            return Err(Status::out_of_range(format!(
                "request too large: {len} bytes, over the {}-byte limit",
                self.max_message_bytes
            )));
        }
        let Some(bytes) = self.pending.get(PREFIX..PREFIX + len) else {
            return Ok(None);
        };
        let message = M::decode(bytes)
            .map_err(|e| Status::invalid_argument(format!("malformed request: {e}")))?;
        if self.pending.len() == PREFIX + len {
            // Free the buffer: the stream may now sit idle for hours.
            self.pending = Vec::new();
        } else {
            self.pending.drain(..PREFIX + len);
        }
        Ok(Some(message))
    }
}

/// The body of a streaming gRPC response: one data frame per message
/// received on the channel, then the trailers that carry the status: OK
/// when the channel closes, or the error the channel ends with.
pub struct ResponseBody<M> {
    messages: mpsc::Receiver<Result<M, Status>>,
    max_message_bytes: usize,
    finished: bool,
}

impl<M: Encode> ResponseBody<M> {
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
pub fn frame<M: Encode>(message: &M, max_message_bytes: usize) -> Result<Bytes, Status> {
    let len = message.encoded_len();
    let prefix_len = u32::try_from(len)
        .ok()
        .filter(|_| len <= max_message_bytes)
        .ok_or_else(|| {
            Status::resource_exhausted(format!(
                "response too large: {len} bytes, over the {max_message_bytes}-byte limit"
            ))
        })?;
    let mut buf = Vec::with_capacity(PREFIX + len);
    buf.push(0);
    buf.extend_from_slice(&prefix_len.to_be_bytes());
    message.encode_to(&mut buf);
    if buf.len() != PREFIX + len {
        return Err(Status::internal(format!(
            "a response encoded to {} bytes, not the {len} it measured",
            buf.len() - PREFIX
        )));
    }
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

impl<M: Encode> Body for ResponseBody<M> {
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

    /// A request body delivering `bytes` in frames of `chunk` bytes.
    fn body_of(bytes: Vec<u8>, chunk: usize) -> tonic::body::Body {
        let frames: Vec<Result<Frame<Bytes>, Status>> = bytes
            .chunks(chunk)
            .map(|c| Ok(Frame::data(Bytes::copy_from_slice(c))))
            .collect();
        tonic::body::Body::new(http_body_util::StreamBody::new(tokio_stream::iter(frames)))
    }

    fn framed(messages: &[DiscoveryResponse]) -> Vec<u8> {
        messages
            .iter()
            .flat_map(|m| frame(m, 1 << 20).expect("framed").to_vec())
            .collect()
    }

    #[tokio::test]
    async fn requests_are_read_whatever_the_frames_cut() {
        let sent = [response("1"), response("2"), response("3")];
        for chunk in [1, 3, 7, 1000] {
            let mut requests =
                Requests::<DiscoveryResponse>::new(body_of(framed(&sent), chunk), 1 << 20);
            for m in &sent {
                let got = requests.message().await.expect("read").expect("a message");
                assert_eq!(&got, m, "chunks of {chunk}");
            }
            assert!(requests.message().await.expect("end").is_none());
            assert!(requests.pending.capacity() == 0, "buffer freed once empty");
        }
    }

    #[tokio::test]
    async fn bad_requests_end_the_stream_with_a_reason() {
        let one = framed(&[response(&"x".repeat(200))]);
        let mut r = Requests::<DiscoveryResponse>::new(body_of(one.clone(), 1000), 100);
        let e = r.message().await.expect_err("too big");
        assert_eq!(e.code(), tonic::Code::OutOfRange);
        assert!(e.message().contains("100-byte limit"), "{}", e.message());

        let mut r = Requests::<DiscoveryResponse>::new(body_of(one[..50].to_vec(), 1000), 1 << 20);
        let e = r.message().await.expect_err("truncated");
        assert!(
            e.message().contains("middle of a message"),
            "{}",
            e.message()
        );

        let mut compressed = one.clone();
        compressed[0] = 1;
        let mut r = Requests::<DiscoveryResponse>::new(body_of(compressed, 1000), 1 << 20);
        let e = r.message().await.expect_err("compressed");
        assert_eq!(e.code(), tonic::Code::Unimplemented);

        let mut garbage = one;
        garbage[PREFIX] = 0xff;
        let mut r = Requests::<DiscoveryResponse>::new(body_of(garbage, 1000), 1 << 20);
        let e = r.message().await.expect_err("malformed");
        assert_eq!(e.code(), tonic::Code::InvalidArgument);
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
