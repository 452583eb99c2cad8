//! MLLP (Minimal Lower Layer Protocol) framing, the listener that serves ORU^R01 intake over it,
//! and a small client helper.
//!
//! A frame is `0x0B` + message + `0x1C 0x0D`. [`MllpDecoder`] turns a byte stream into frames:
//!
//! - bytes outside a frame are discarded and counted as junk;
//! - a frame split across many reads is reassembled, several frames in one read are all
//!   delivered;
//! - a frame longer than the configured maximum is discarded up to its end block (or the next
//!   start block) and reported as [`MllpFrame::Oversize`], keeping the first bytes so the
//!   control id can still be answered; the stream goes on with the next frame;
//! - a start block inside a frame means the sender gave up on the previous message and began
//!   again: the partial message is discarded (counted as junk) and the new one read;
//! - `0x1C` ends a frame; the `0x0D` that should follow is consumed when it arrives, so a sender
//!   that omits it is still answered;
//! - content that is not valid UTF-8 is decoded lossily (invalid bytes become U+FFFD) and
//!   flagged, rather than rejected: Latin-1 devices then still deliver their numeric readings,
//!   and a garbled text field is visible as such.

mod listener;

pub use listener::{serve, ListenerConfig, OruHandler};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Start of an MLLP frame (VT).
pub const START_BLOCK: u8 = 0x0B;
/// End of an MLLP frame (FS, CR).
pub const END_BLOCK: [u8; 2] = [0x1C, 0x0D];
/// Default largest accepted frame content, 1 MiB.
pub const DEFAULT_MAX_FRAME_BYTES: usize = 1024 * 1024;
/// How many leading bytes of an oversize frame are kept (enough for its MSH segment).
pub const OVERSIZE_HEAD_BYTES: usize = 1024;

/// Wraps a message in an MLLP frame.
pub fn frame(message: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(message.len() + 3);
    out.push(START_BLOCK);
    out.extend_from_slice(message.as_bytes());
    out.extend_from_slice(&END_BLOCK);
    out
}

/// One item read from an MLLP byte stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MllpFrame {
    /// A complete frame's content.
    Message {
        /// The content, decoded as UTF-8 (lossily, see `invalid_utf8`).
        text: String,
        /// The content was not valid UTF-8; invalid bytes were replaced by U+FFFD.
        invalid_utf8: bool,
    },
    /// A frame larger than the maximum, discarded.
    Oversize {
        /// The first [`OVERSIZE_HEAD_BYTES`] bytes of the frame, decoded lossily.
        head: String,
        /// Size of the discarded content in bytes.
        size: usize,
    },
}

#[derive(Debug)]
enum State {
    /// Outside a frame, looking for a start block.
    Seeking,
    /// Inside a frame whose content starts at `pos`; `scanned` bytes of it hold no block byte.
    InFrame { scanned: usize },
    /// Inside a frame that grew past the maximum: dropping bytes until its end.
    Discarding { head: Vec<u8>, size: usize },
}

/// Incremental MLLP frame decoder: [`feed`](Self::feed) it the bytes read from a connection and
/// take complete frames with [`next_frame`](Self::next_frame).
///
/// Memory stays bounded by the maximum frame size plus one read: an oversize frame is dropped
/// as it arrives.
#[derive(Debug)]
pub struct MllpDecoder {
    max_frame_bytes: usize,
    buf: Vec<u8>,
    pos: usize,
    state: State,
    junk: usize,
    skip_cr: bool,
}

impl MllpDecoder {
    /// A decoder accepting frames of at most `max_frame_bytes` bytes of content.
    pub fn new(max_frame_bytes: usize) -> Self {
        MllpDecoder { max_frame_bytes, buf: Vec::new(), pos: 0, state: State::Seeking, junk: 0, skip_cr: false }
    }

    /// Appends bytes read from the stream.
    pub fn feed(&mut self, bytes: &[u8]) {
        if self.pos > 0 {
            self.buf.drain(..self.pos);
            self.pos = 0;
        }
        self.buf.extend_from_slice(bytes);
    }

    /// The next complete item, or `None` until more bytes are fed.
    pub fn next_frame(&mut self) -> Option<MllpFrame> {
        loop {
            let data = &self.buf[self.pos..];
            match std::mem::replace(&mut self.state, State::Seeking) {
                State::Seeking => {
                    if data.is_empty() {
                        return None;
                    }
                    if std::mem::take(&mut self.skip_cr) && data[0] == END_BLOCK[1] {
                        self.pos += 1;
                        continue;
                    }
                    match data.iter().position(|&b| b == START_BLOCK) {
                        Some(i) => {
                            self.junk += i;
                            self.pos += i + 1;
                            self.state = State::InFrame { scanned: 0 };
                        }
                        None => {
                            self.junk += data.len();
                            self.pos = self.buf.len();
                            return None;
                        }
                    }
                }
                State::InFrame { scanned } => match find_block_byte(&data[scanned..]) {
                    Some(j) if data[scanned + j] == START_BLOCK => {
                        // The sender restarted: drop the partial message.
                        self.junk += scanned + j;
                        self.pos += scanned + j + 1;
                        self.state = State::InFrame { scanned: 0 };
                    }
                    Some(j) => {
                        let end = scanned + j;
                        let content = &data[..end];
                        let item = if end > self.max_frame_bytes {
                            MllpFrame::Oversize { head: head_of(content), size: end }
                        } else {
                            let (text, invalid_utf8) = decode_text(content);
                            MllpFrame::Message { text, invalid_utf8 }
                        };
                        self.pos += end + 1;
                        self.skip_cr = true;
                        return Some(item);
                    }
                    None if data.len() > self.max_frame_bytes => {
                        let head = data[..OVERSIZE_HEAD_BYTES.min(data.len())].to_vec();
                        self.state = State::Discarding { head, size: data.len() };
                        self.pos = self.buf.len();
                        return None;
                    }
                    None => {
                        self.state = State::InFrame { scanned: data.len() };
                        return None;
                    }
                },
                State::Discarding { head, size } => match find_block_byte(data) {
                    Some(i) => {
                        let restarted = data[i] == START_BLOCK;
                        self.pos += i + 1;
                        if restarted {
                            self.state = State::InFrame { scanned: 0 };
                        } else {
                            self.skip_cr = true;
                        }
                        return Some(MllpFrame::Oversize { head: head_of(&head), size: size + i });
                    }
                    None => {
                        self.state = State::Discarding { head, size: size + data.len() };
                        self.pos = self.buf.len();
                        return None;
                    }
                },
            }
        }
    }

    /// Bytes discarded outside frames (and partial frames abandoned by a restart) since the last
    /// call; resets the count.
    pub fn take_junk_bytes(&mut self) -> usize {
        std::mem::take(&mut self.junk)
    }

    /// Whether a frame has been started and not yet ended (a client leaving now leaves half a
    /// message).
    pub fn is_mid_frame(&self) -> bool {
        !matches!(self.state, State::Seeking)
    }

    /// Content bytes of the unfinished frame received so far (0 outside a frame).
    pub fn pending_bytes(&self) -> usize {
        match &self.state {
            State::Seeking => 0,
            State::InFrame { .. } => self.buf.len() - self.pos,
            State::Discarding { size, .. } => *size,
        }
    }
}

impl MllpDecoder {
    /// Bytes held in memory (the unfinished frame): at most the maximum frame size plus the
    /// last bytes fed.
    pub fn buffered_bytes(&self) -> usize {
        self.buf.len() - self.pos
    }
}

impl Default for MllpDecoder {
    fn default() -> Self {
        MllpDecoder::new(DEFAULT_MAX_FRAME_BYTES)
    }
}

fn find_block_byte(data: &[u8]) -> Option<usize> {
    data.iter().position(|&b| b == END_BLOCK[0] || b == START_BLOCK)
}

fn head_of(content: &[u8]) -> String {
    String::from_utf8_lossy(&content[..OVERSIZE_HEAD_BYTES.min(content.len())]).into_owned()
}

fn decode_text(content: &[u8]) -> (String, bool) {
    match std::str::from_utf8(content) {
        Ok(text) => (text.to_owned(), false),
        Err(_) => (String::from_utf8_lossy(content).into_owned(), true),
    }
}

/// Client helper (tests, demo, benchmarks): sends `message` in an MLLP frame and returns the
/// text of the one framed reply (the ACK). Use it lock-step, one message at a time per stream.
///
/// # Errors
///
/// IO errors of the stream; `UnexpectedEof` when the peer closes before a whole reply arrives;
/// `InvalidData` when the reply frame exceeds [`DEFAULT_MAX_FRAME_BYTES`].
pub async fn send(stream: &mut TcpStream, message: &str) -> std::io::Result<String> {
    stream.write_all(&frame(message)).await?;
    let mut decoder = MllpDecoder::default();
    let mut chunk = vec![0u8; 8 * 1024];
    loop {
        match decoder.next_frame() {
            Some(MllpFrame::Message { text, .. }) => return Ok(text),
            Some(MllpFrame::Oversize { size, .. }) => {
                return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, format!("reply frame of {size} bytes is too large")))
            }
            None => {}
        }
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "connection closed before a whole reply arrived"));
        }
        decoder.feed(&chunk[..n]);
    }
}
