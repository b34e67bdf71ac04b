//! gRPC framing of a server stream: requests read and responses written
//! each in buffers of their own.
//!
//! tonic's generated servers encode every message of a stream into one
//! growable buffer that keeps the capacity of the largest message for as
//! long as the stream lives. An ADS stream lives for hours and its first
//! responses are its largest (a route configuration alone can weigh
//! hundreds of kilobytes at 1,000 services), so every connected proxy kept
//! that much memory for nothing. Here each response is written in chunks of
//! at most [`CHUNK`] bytes (a part larger than that alone in one), each
//! handed to the HTTP/2 layer and freed once written. A whole response in
//! one buffer was a fresh allocation of up to a megabyte per response; with
//! a thousand proxies connecting, faulting in and zeroing those pages was a
//! sixth of the server's work, while chunks of a few tens of kilobytes are
//! reused from the allocator's free lists. Requests are read the same way
//! as before: tonic's reader keeps a buffer the size of the largest request
//! (a proxy's subscription to every endpoint of the mesh), this one frees
//! each request's bytes once decoded.

use std::future::poll_fn;
use std::pin::Pin;
use std::task::{Context, Poll};

use http_body::{Body, Frame};
use prost::Message;
use tokio::sync::mpsc;
use tonic::codegen::{http, Bytes};
use tonic::Status;

use crate::xds::protocol::encode::Encode;

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

/// The most a response chunk holds, unless one part alone is larger. Small
/// enough to be reused from the allocator's free lists, large enough that
/// the HTTP/2 layer (which cuts it into frames of the peer's size, 16 KiB
/// for Envoy) is handed few of them.
pub const CHUNK: usize = 64 * 1024;

/// The body of a streaming gRPC response: each message received on the
/// channel, in chunks, then the trailers that carry the status: OK when the
/// channel closes, or the error the channel ends with.
pub struct ResponseBody<M> {
    messages: mpsc::Receiver<Result<M, Status>>,
    max_message_bytes: usize,
    /// The message being written, if its last chunk has not been.
    writing: Option<Framing<M>>,
    finished: bool,
}

impl<M: Encode> ResponseBody<M> {
    pub fn new(messages: mpsc::Receiver<Result<M, Status>>, max_message_bytes: usize) -> Self {
        ResponseBody {
            messages,
            max_message_bytes,
            writing: None,
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

    /// The next chunk of the message being written, if there is one.
    fn next_chunk(&mut self) -> Option<Result<Bytes, Status>> {
        let writing = self.writing.as_mut()?;
        let chunk = writing.next_chunk();
        if writing.is_done() || chunk.is_err() {
            self.writing = None;
        }
        Some(chunk)
    }
}

/// One message being written out with its gRPC prefix, a chunk at a time.
pub struct Framing<M> {
    message: M,
    /// The message's length, for the prefix; written with the first chunk.
    prefix: Option<u32>,
    /// The first part not yet written.
    next: usize,
}

impl<M: Encode> Framing<M> {
    /// Starts writing `message`, unless it is larger than `max_message_bytes`.
    pub fn new(message: M, max_message_bytes: usize) -> Result<Self, Status> {
        let len = message.encoded_len();
        let prefix = u32::try_from(len)
            .ok()
            .filter(|_| len <= max_message_bytes)
            .ok_or_else(|| {
                Status::resource_exhausted(format!(
                    "response too large: {len} bytes, over the {max_message_bytes}-byte limit"
                ))
            })?;
        Ok(Framing {
            message,
            prefix: Some(prefix),
            next: 0,
        })
    }

    pub fn is_done(&self) -> bool {
        self.prefix.is_none() && self.next >= self.message.parts()
    }

    /// The next chunk: whole parts, as many as fit in [`CHUNK`] bytes and
    /// at least one, in a buffer of exactly their size.
    pub fn next_chunk(&mut self) -> Result<Bytes, Status> {
        let parts = self.message.parts();
        let mut size = if self.prefix.is_some() { PREFIX } else { 0 };
        let mut end = self.next;
        while end < parts {
            let len = self.message.part_len(end);
            if end > self.next && size + len > CHUNK {
                break;
            }
            size += len;
            end += 1;
        }
        let mut buf = Vec::with_capacity(size);
        if let Some(len) = self.prefix.take() {
            buf.push(0);
            buf.extend_from_slice(&len.to_be_bytes());
        }
        for i in self.next..end {
            self.message.encode_part(i, &mut buf);
        }
        self.next = end;
        if buf.len() != size {
            // Part of the message may already be sent: the stream cannot go on.
            return Err(Status::internal(format!(
                "a response encoded to {} bytes where it measured {size}",
                buf.len()
            )));
        }
        Ok(Bytes::from(buf))
    }
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

// The body never pins the message it holds, so it is `Unpin` whether the
// message is or not.
impl<M> Unpin for ResponseBody<M> {}

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
        let end = loop {
            match self.next_chunk() {
                Some(Ok(chunk)) => return Poll::Ready(Some(Ok(Frame::data(chunk)))),
                Some(Err(status)) => {
                    tracing::warn!(%status, "ending a stream: a response cannot be sent");
                    break status;
                }
                None => {}
            }
            match self.messages.poll_recv(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Some(Ok(message))) => {
                    match Framing::new(message, self.max_message_bytes) {
                        Ok(framing) => self.writing = Some(framing),
                        Err(status) => {
                            tracing::warn!(%status, "ending a stream: a response cannot be sent");
                            break status;
                        }
                    }
                }
                Poll::Ready(Some(Err(status))) => break status,
                Poll::Ready(None) => break Status::ok(""),
            }
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
    async fn frames<M: Encode>(sent: Vec<Result<M, Status>>, max: usize) -> Vec<Frame<Bytes>> {
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

    /// `messages` with their gRPC prefixes, one after the other.
    fn framed(messages: &[DiscoveryResponse]) -> Vec<u8> {
        let mut out = Vec::new();
        for m in messages {
            let mut framing = Framing::new(m.clone(), 1 << 20).expect("framed");
            while !framing.is_done() {
                out.extend_from_slice(&framing.next_chunk().expect("a chunk"));
            }
        }
        out
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

    /// A message of parts of the given sizes, part `i` written as bytes of
    /// value `i`; part `lie`, if any, measures one byte more than it writes.
    struct Parts {
        sizes: Vec<usize>,
        lie: Option<usize>,
    }

    impl Encode for Parts {
        fn parts(&self) -> usize {
            self.sizes.len()
        }

        fn part_len(&self, i: usize) -> usize {
            self.sizes[i] + usize::from(self.lie == Some(i))
        }

        fn encode_part(&self, i: usize, buf: &mut Vec<u8>) {
            buf.extend(std::iter::repeat_n(i as u8, self.sizes[i]));
        }
    }

    #[tokio::test]
    async fn a_large_message_is_written_in_chunks_of_whole_parts() {
        let sizes = vec![10, 70_000, 30_000, 30_000, 5, 40_000, 1, 0, 2];
        let f = frames(
            vec![
                Ok(Parts {
                    sizes: sizes.clone(),
                    lie: None,
                }),
                Ok(Parts {
                    sizes: vec![3],
                    lie: None,
                }),
            ],
            1 << 24,
        )
        .await;
        let data: Vec<&Bytes> = f.iter().filter_map(Frame::data_ref).collect();
        assert_eq!(status_of(f.last().expect("frames")).code(), tonic::Code::Ok);
        // The first message: its prefix and parts, cut at part boundaries.
        let total: usize = sizes.iter().sum();
        let mut want = vec![0];
        want.extend_from_slice(&(total as u32).to_be_bytes());
        for (i, n) in sizes.iter().enumerate() {
            want.extend(std::iter::repeat_n(i as u8, *n));
        }
        let chunks = data.len() - 1;
        let got: Vec<u8> = data[..chunks].iter().flat_map(|d| d.to_vec()).collect();
        assert_eq!(got, want);
        assert_eq!(
            data[..chunks].iter().map(|d| d.len()).collect::<Vec<_>>(),
            [PREFIX + 10, 70_000, 60_005, 40_003],
            "as many whole parts as fit in a chunk; a larger part alone"
        );
        assert_eq!(data[chunks][..], [0, 0, 0, 0, 3, 0, 0, 0]);
    }

    #[tokio::test]
    async fn a_part_that_measures_wrong_ends_the_stream() {
        let f = frames(
            vec![Ok(Parts {
                sizes: vec![10, 70_000, 20],
                lie: Some(1),
            })],
            1 << 24,
        )
        .await;
        assert_eq!(f.len(), 2, "the first chunk, then the status");
        assert_eq!(f[0].data_ref().expect("data").len(), PREFIX + 10);
        let s = status_of(&f[1]);
        assert_eq!(s.code(), tonic::Code::Internal);
        assert!(s.message().contains("measured 70001"), "{}", s.message());
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
