//! How a message is written to a stream: as parts whose encodings, one
//! after the other, are the message's, so a large response goes out a chunk
//! at a time.

use prost::Message;

/// A message a stream writes: Envoy's prost messages, and the responses
/// written straight from shared resources (`response.rs`).
///
/// A message is written as a sequence of parts (a response's resources,
/// say) whose encodings, one after the other, are the message's encoding,
/// so that it can be written a chunk at a time.
pub trait Encode {
    fn parts(&self) -> usize;
    /// The exact size [`Encode::encode_part`] appends for part `i`.
    fn part_len(&self, i: usize) -> usize;
    fn encode_part(&self, i: usize, buf: &mut Vec<u8>);

    fn encoded_len(&self) -> usize {
        (0..self.parts()).map(|i| self.part_len(i)).sum()
    }

    fn encode_to(&self, buf: &mut Vec<u8>) {
        for i in 0..self.parts() {
            self.encode_part(i, buf);
        }
    }
}

/// A prost message is one part.
impl<M: Message> Encode for M {
    fn parts(&self) -> usize {
        1
    }

    fn part_len(&self, _: usize) -> usize {
        Message::encoded_len(self)
    }

    fn encode_part(&self, _: usize, buf: &mut Vec<u8>) {
        // A Vec grows as needed, so encoding into one cannot run out of room.
        let _ = self.encode(buf);
    }
}
