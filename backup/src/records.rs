//! The record stream: how a node's stored records travel to the backup
//! tool (an export) and back into a cluster (an import), and how they sit
//! in a backup's chunks before compression.
//!
//! A stream is a sequence of frames. A record frame is the tag `R`, the
//! key's length (u32, big-endian), the key, the value's length (u32,
//! big-endian) and the value: the node's stored encoding of the key's
//! versioned state (every sibling, tombstone and causal context). An export
//! ends with an end frame, the tag `E` and the number of records before it
//! (u64, big-endian), so a reader tells a complete stream from a cut one.

use bytes::{Buf, Bytes, BytesMut};

/// Tag of a record frame.
const RECORD: u8 = b'R';
/// Tag of the end frame.
const END: u8 = b'E';
/// Longest key a stream may carry (the node refuses longer keys anyway).
pub const MAX_KEY_BYTES: usize = 64 << 10;
/// Largest stored state a stream may carry.
pub const MAX_VALUE_BYTES: usize = 256 << 20;

/// One key's stored state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    /// The user key.
    pub key: Bytes,
    /// The node's stored encoding of the key's versioned state.
    pub value: Bytes,
}

/// What a stream holds next.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Frame {
    /// A record.
    Record(Record),
    /// The end of an export, with the number of records it sent.
    End(u64),
}

/// Why a stream could not be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RecordError {
    /// A frame started with an unknown tag.
    #[error("unknown frame tag {0:#04x} in a record stream")]
    UnknownTag(u8),
    /// A key or value longer than the stream allows.
    #[error("a record's {what} claims {len} bytes, more than the {max} a stream carries")]
    TooLong {
        /// "key" or "value".
        what: &'static str,
        /// The claimed length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The stream stopped inside a frame.
    #[error("the record stream ends inside a frame ({0} bytes left over)")]
    Truncated(usize),
    /// Bytes followed the end frame.
    #[error("the record stream goes on after its end frame")]
    AfterEnd,
}

/// Appends a record frame to `out`.
pub fn put_record(out: &mut Vec<u8>, key: &[u8], value: &[u8]) {
    out.reserve(9 + key.len() + value.len());
    out.push(RECORD);
    out.extend_from_slice(&(key.len() as u32).to_be_bytes());
    out.extend_from_slice(key);
    out.extend_from_slice(&(value.len() as u32).to_be_bytes());
    out.extend_from_slice(value);
}

/// Appends the end frame of a stream of `count` records to `out`.
pub fn put_end(out: &mut Vec<u8>, count: u64) {
    out.push(END);
    out.extend_from_slice(&count.to_be_bytes());
}

/// Reads frames from bytes that arrive in pieces.
#[derive(Default)]
pub struct Decoder {
    buf: BytesMut,
    ended: bool,
}

impl Decoder {
    /// A decoder with nothing read yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds the next bytes of the stream.
    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// The next whole frame, or `None` until more bytes arrive.
    pub fn next_frame(&mut self) -> Result<Option<Frame>, RecordError> {
        let Some(&tag) = self.buf.first() else {
            return Ok(None);
        };
        if self.ended {
            return Err(RecordError::AfterEnd);
        }
        match tag {
            RECORD => self.record(),
            END if self.buf.len() >= 9 => {
                self.buf.advance(1);
                self.ended = true;
                Ok(Some(Frame::End(self.buf.get_u64())))
            }
            END => Ok(None),
            other => Err(RecordError::UnknownTag(other)),
        }
    }

    /// Checks that nothing is left inside a frame.
    pub fn finish(&self) -> Result<(), RecordError> {
        match self.buf.len() {
            0 => Ok(()),
            _ if self.ended => Err(RecordError::AfterEnd),
            left => Err(RecordError::Truncated(left)),
        }
    }

    fn record(&mut self) -> Result<Option<Frame>, RecordError> {
        let Some(key_len) = length_at(&self.buf, 1, "key", MAX_KEY_BYTES)? else {
            return Ok(None);
        };
        let value_at = 5 + key_len;
        let Some(value_len) = length_at(&self.buf, value_at, "value", MAX_VALUE_BYTES)? else {
            return Ok(None);
        };
        if self.buf.len() < value_at + 4 + value_len {
            return Ok(None);
        }
        self.buf.advance(5);
        let key = self.buf.split_to(key_len).freeze();
        self.buf.advance(4);
        let value = self.buf.split_to(value_len).freeze();
        Ok(Some(Frame::Record(Record { key, value })))
    }
}

/// The u32 length at `at`, if the bytes hold it, checked against `max`.
fn length_at(
    buf: &[u8],
    at: usize,
    what: &'static str,
    max: usize,
) -> Result<Option<usize>, RecordError> {
    let Some(bytes) = buf.get(at..at + 4) else {
        return Ok(None);
    };
    let len = u32::from_be_bytes(bytes.try_into().unwrap_or_default()) as usize;
    match len > max {
        true => Err(RecordError::TooLong { what, len, max }),
        false => Ok(Some(len)),
    }
}

/// Every record of a whole stream without an end frame (a chunk, an
/// import's body).
pub fn decode_all(bytes: &[u8]) -> Result<Vec<Record>, RecordError> {
    let mut decoder = Decoder::new();
    decoder.push(bytes);
    let mut out = Vec::new();
    while let Some(frame) = decoder.next_frame()? {
        match frame {
            Frame::Record(record) => out.push(record),
            Frame::End(_) => return Err(RecordError::AfterEnd),
        }
    }
    decoder.finish()?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stream(records: &[(&str, &str)], end: bool) -> Vec<u8> {
        let mut out = Vec::new();
        for (key, value) in records {
            put_record(&mut out, key.as_bytes(), value.as_bytes());
        }
        if end {
            put_end(&mut out, records.len() as u64);
        }
        out
    }

    #[test]
    fn frames_arriving_a_byte_at_a_time_come_out_whole() {
        let bytes = stream(&[("a", "1"), ("", ""), ("key", "value")], true);
        let mut decoder = Decoder::new();
        let mut frames = Vec::new();
        for byte in &bytes {
            decoder.push(&[*byte]);
            while let Some(frame) = decoder.next_frame().unwrap() {
                frames.push(frame);
            }
        }
        decoder.finish().unwrap();
        let record = |k: &'static str, v: &'static str| {
            Frame::Record(Record {
                key: Bytes::from_static(k.as_bytes()),
                value: Bytes::from_static(v.as_bytes()),
            })
        };
        assert_eq!(
            frames,
            vec![
                record("a", "1"),
                record("", ""),
                record("key", "value"),
                Frame::End(3)
            ]
        );
    }

    #[test]
    fn a_cut_stream_is_told_from_a_whole_one() {
        let bytes = stream(&[("a", "1"), ("b", "2")], false);
        assert_eq!(decode_all(&bytes).unwrap().len(), 2);
        assert_eq!(
            decode_all(&bytes[..bytes.len() - 1]),
            Err(RecordError::Truncated(10))
        );
    }

    #[test]
    fn garbage_is_refused_without_waiting_for_a_huge_length() {
        assert_eq!(decode_all(b"X"), Err(RecordError::UnknownTag(b'X')));
        let mut bytes = vec![RECORD];
        bytes.extend_from_slice(&u32::MAX.to_be_bytes());
        assert!(matches!(
            decode_all(&bytes),
            Err(RecordError::TooLong { what: "key", .. })
        ));
        let mut after_end = stream(&[("a", "1")], true);
        after_end.push(RECORD);
        let mut decoder = Decoder::new();
        decoder.push(&after_end);
        assert!(matches!(decoder.next_frame(), Ok(Some(Frame::Record(_)))));
        assert_eq!(decoder.next_frame(), Ok(Some(Frame::End(1))));
        assert_eq!(decoder.next_frame(), Err(RecordError::AfterEnd));
    }
}
