//! Framing on the stream: `u32` big-endian length of what follows, `u64`
//! big-endian request id, then the postcard-encoded message. A message is
//! an enum of fewer than 128 variants, so its first byte is the variant's
//! index (its tag), which tells the reader the frame's cap before the rest
//! arrives. A message may be followed by a trailer of a fixed type, read
//! only where one is expected (from protocol 2 on, a request's trace
//! context: see [`super::handshake`]); readers that expect none ignore it.
//!
//! Reading holds no more than what has arrived: the length is checked
//! against the cap of the message's kind ([`Capped`]), and the payload
//! buffer grows a chunk at a time as bytes come in, never to the announced
//! length up front. A stream may sit idle between frames as long as it
//! likes, but once a frame has begun, each piece of it must arrive within
//! the stall timeout: a peer that announces a frame and stops sending loses
//! the stream.

use std::future::Future;
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufWriter};
use tokio::sync::mpsc::UnboundedReceiver;

pub use super::limits::MAX_FRAME;

/// Bytes of a payload read at a time: the buffer grows at most this far
/// beyond what has arrived.
const CHUNK: usize = 64 << 10;

/// A read buffer grown beyond this by a large frame is freed after it,
/// not kept for the stream's next frames.
const KEEP: usize = 1 << 20;

/// Bytes of the write buffer: frames queued while the socket is busy go
/// out together, up to this much per write; larger frames go out directly.
const WRITE_BUFFER: usize = 256 << 10;

/// A message type whose frames have a cap per kind.
pub trait Capped {
    /// Largest frame length (the length field: request id plus message)
    /// of a message whose first byte is `tag`.
    fn max_len(tag: u8) -> usize;
}

/// Appends one frame to `out`.
pub fn encode_into<T: Serialize>(out: &mut Vec<u8>, id: u64, message: &T) {
    let start = out.len();
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(&id.to_be_bytes());
    let mut out_vec = std::mem::take(out);
    out_vec = postcard::to_extend(message, out_vec).expect("messages always serialize");
    *out = out_vec;
    let len = u32::try_from(out.len() - start - 4).expect("frames are far below 4 GiB");
    out[start..start + 4].copy_from_slice(&len.to_be_bytes());
}

/// One frame as its own buffer.
pub fn encode<T: Serialize>(id: u64, message: &T) -> Vec<u8> {
    let mut out = Vec::with_capacity(64);
    encode_into(&mut out, id, message);
    out
}

/// One frame as its own buffer, its message followed by `trailer`.
pub fn encode_with_trailer<T: Serialize, E: Serialize>(
    id: u64,
    message: &T,
    trailer: &E,
) -> Vec<u8> {
    let out = encode(id, message);
    let mut out = postcard::to_extend(trailer, out).expect("trailers always serialize");
    let len = u32::try_from(out.len() - 4).expect("frames are far below 4 GiB");
    out[..4].copy_from_slice(&len.to_be_bytes());
    out
}

/// Why a frame could not be read.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// The stream failed or ended.
    #[error("stream: {0}")]
    Io(#[from] std::io::Error),
    /// A length outside `9..=MAX_FRAME` (an id and at least a tag).
    #[error("frame length {0} is out of bounds")]
    Length(usize),
    /// A length above the cap of the message's kind.
    #[error("frame length {len} is above the cap {cap} of messages with tag {tag}")]
    Oversized {
        /// The message's first byte.
        tag: u8,
        /// The announced length.
        len: usize,
        /// The cap of its kind.
        cap: usize,
    },
    /// The rest of a begun frame did not come within the stall timeout.
    #[error("the peer stalled for {0:?} in the middle of a frame")]
    Stalled(Duration),
    /// The payload is not a valid message (and trailer, where one may
    /// follow it).
    #[error("undecodable frame: {0}")]
    Decode(#[from] postcard::Error),
    /// Bytes follow the message's trailer.
    #[error("{0} bytes after the trailer")]
    Trailing(usize),
}

/// The start of a frame: what is known before its payload is read.
#[derive(Clone, Copy, Debug)]
pub struct Header {
    /// The request id.
    pub id: u64,
    /// The length field: request id plus message.
    pub len: usize,
    /// The message's first byte.
    tag: u8,
}

/// Reads the next frame's header, its tag included, and checks its length
/// against the cap of `T`'s kind. Waits as long as it takes for the first
/// byte; after it, the rest must come within `stall`.
pub async fn read_header<R, T>(reader: &mut R, stall: Duration) -> Result<Header, FrameError>
where
    R: AsyncRead + Unpin,
    T: Capped,
{
    let mut len = [0; 4];
    len[0] = reader.read_u8().await?;
    within(stall, reader.read_exact(&mut len[1..])).await?;
    let len = u32::from_be_bytes(len) as usize;
    if !(9..=MAX_FRAME).contains(&len) {
        return Err(FrameError::Length(len));
    }
    let id = within(stall, reader.read_u64()).await?;
    let tag = within(stall, reader.read_u8()).await?;
    let cap = T::max_len(tag);
    if len > cap {
        return Err(FrameError::Oversized { tag, len, cap });
    }
    Ok(Header { id, len, tag })
}

/// Reads and decodes the payload of the frame `header` began, each chunk
/// within `stall`, ignoring any trailer. `buf` is reused between calls; it
/// grows with what arrives, and is freed after a frame that made it large.
pub async fn read_payload<R, T>(
    reader: &mut R,
    header: &Header,
    buf: &mut Vec<u8>,
    stall: Duration,
) -> Result<T, FrameError>
where
    R: AsyncRead + Unpin,
    T: DeserializeOwned,
{
    fill(reader, header, buf, stall).await?;
    let message = postcard::from_bytes(buf);
    release(buf);
    Ok(message?)
}

/// Reads and decodes the payload of the frame `header` began, as
/// [`read_payload`] does, with its trailer if it has one: a frame whose
/// message ends it has none, else exactly one `E` must follow the message.
pub async fn read_payload_with_trailer<R, T, E>(
    reader: &mut R,
    header: &Header,
    buf: &mut Vec<u8>,
    stall: Duration,
) -> Result<(T, Option<E>), FrameError>
where
    R: AsyncRead + Unpin,
    T: DeserializeOwned,
    E: DeserializeOwned,
{
    fill(reader, header, buf, stall).await?;
    let decoded = decode_with_trailer(buf);
    release(buf);
    decoded
}

/// A message and the trailer that may follow it (see
/// [`read_payload_with_trailer`]).
fn decode_with_trailer<T, E>(payload: &[u8]) -> Result<(T, Option<E>), FrameError>
where
    T: DeserializeOwned,
    E: DeserializeOwned,
{
    let (message, rest) = postcard::take_from_bytes(payload)?;
    if rest.is_empty() {
        return Ok((message, None));
    }
    match postcard::take_from_bytes(rest)? {
        (trailer, []) => Ok((message, Some(trailer))),
        (_, extra) => Err(FrameError::Trailing(extra.len())),
    }
}

/// Reads the payload of the frame `header` began into `buf`, a chunk at a
/// time, each within `stall`.
async fn fill<R: AsyncRead + Unpin>(
    reader: &mut R,
    header: &Header,
    buf: &mut Vec<u8>,
    stall: Duration,
) -> Result<(), FrameError> {
    let payload = header.len - 8;
    buf.clear();
    buf.push(header.tag);
    while buf.len() < payload {
        let filled = buf.len();
        buf.resize(payload.min(filled + CHUNK), 0);
        within(stall, reader.read_exact(&mut buf[filled..])).await?;
    }
    Ok(())
}

/// Frees `buf` if a large frame made it large.
fn release(buf: &mut Vec<u8>) {
    if buf.capacity() > KEEP {
        *buf = Vec::new();
    }
}

/// Reads one whole frame (see [`read_header`] and [`read_payload`]).
#[cfg(test)]
pub async fn read<R, T>(
    reader: &mut R,
    buf: &mut Vec<u8>,
    stall: Duration,
) -> Result<(u64, T), FrameError>
where
    R: AsyncRead + Unpin,
    T: Capped + DeserializeOwned,
{
    let header = read_header::<R, T>(reader, stall).await?;
    let message = read_payload(reader, &header, buf, stall).await?;
    Ok((header.id, message))
}

/// `io`, unless it takes longer than `stall`.
async fn within<T>(
    stall: Duration,
    io: impl Future<Output = std::io::Result<T>>,
) -> Result<T, FrameError> {
    match tokio::time::timeout(stall, io).await {
        Ok(result) => Ok(result?),
        Err(_) => Err(FrameError::Stalled(stall)),
    }
}

/// Writes queued frames until the queue closes, the stream fails, or (with
/// a `stall` timeout) the peer takes nothing for that long. Frames queued
/// while the socket is busy go out in the same write. A frame is dropped
/// (and with it whatever it holds, such as a share of a budget) once it is
/// handed to the write buffer or the socket.
pub async fn write_loop<W, F>(writer: W, mut queue: UnboundedReceiver<F>, stall: Option<Duration>)
where
    W: AsyncWrite + Unpin,
    F: AsRef<[u8]>,
{
    let mut writer = BufWriter::with_capacity(WRITE_BUFFER, writer);
    while let Some(frame) = queue.recv().await {
        // Let the tasks that are ready right now queue their frames too, so
        // they share this write.
        tokio::task::yield_now().await;
        let mut next = Some(frame);
        while let Some(frame) = next {
            for piece in frame.as_ref().chunks(WRITE_BUFFER) {
                if !progress(stall, writer.write_all(piece)).await {
                    return;
                }
            }
            drop(frame);
            next = queue.try_recv().ok();
        }
        if !progress(stall, writer.flush()).await {
            return;
        }
    }
    let _ = progress(stall, writer.shutdown()).await;
}

/// Whether a write succeeded (within `stall`, if given).
async fn progress(stall: Option<Duration>, io: impl Future<Output = std::io::Result<()>>) -> bool {
    let Some(stall) = stall else {
        return io.await.is_ok();
    };
    match tokio::time::timeout(stall, io).await {
        Ok(result) => result.is_ok(),
        Err(_) => {
            tracing::warn!(
                ?stall,
                "closing peer stream: the peer read nothing for the stall timeout"
            );
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const STALL: Duration = Duration::from_secs(5);

    impl Capped for String {
        fn max_len(_: u8) -> usize {
            MAX_FRAME
        }
    }

    impl Capped for Vec<u32> {
        fn max_len(_: u8) -> usize {
            MAX_FRAME
        }
    }

    /// Two kinds: small (tag 0) and large (tag 1).
    #[derive(Debug, Serialize, serde::Deserialize)]
    enum Kinds {
        Small(Vec<u8>),
        Large(Vec<u8>),
    }

    impl Capped for Kinds {
        fn max_len(tag: u8) -> usize {
            match tag {
                1 => MAX_FRAME,
                _ => 64,
            }
        }
    }

    fn header(len: u32, id: u64, tag: u8) -> Vec<u8> {
        let mut wire = len.to_be_bytes().to_vec();
        wire.extend_from_slice(&id.to_be_bytes());
        wire.push(tag);
        wire
    }

    #[tokio::test]
    async fn frames_round_trip_back_to_back() {
        let mut wire = Vec::new();
        encode_into(&mut wire, 7, &"hello".to_string());
        encode_into(&mut wire, u64::MAX, &vec![1u32, 2, 3]);
        let mut reader = wire.as_slice();
        let mut buf = Vec::new();
        let (id, a): (u64, String) = read(&mut reader, &mut buf, STALL).await.unwrap();
        assert_eq!((id, a.as_str()), (7, "hello"));
        let (id, b): (u64, Vec<u32>) = read(&mut reader, &mut buf, STALL).await.unwrap();
        assert_eq!((id, b), (u64::MAX, vec![1, 2, 3]));
        assert!(matches!(
            read::<_, String>(&mut reader, &mut buf, STALL).await,
            Err(FrameError::Io(_))
        ));
    }

    /// A trailer is read where one is expected and ignored elsewhere; a
    /// frame without one reads as having none, and bytes after it fail
    /// the frame alone.
    #[tokio::test]
    async fn a_trailer_follows_the_message_where_one_is_expected() {
        let mut wire = encode_with_trailer(1, &"hello".to_string(), &[7u8; 3]);
        encode_into(&mut wire, 2, &"plain".to_string());
        wire.extend(encode_with_trailer(3, &"hello".to_string(), &[7u8; 3]));
        let mut reader = wire.as_slice();
        let mut buf = Vec::new();
        let header = read_header::<_, String>(&mut reader, STALL).await.unwrap();
        let (message, trailer) =
            read_payload_with_trailer::<_, String, [u8; 3]>(&mut reader, &header, &mut buf, STALL)
                .await
                .unwrap();
        assert_eq!(
            (header.id, message.as_str(), trailer),
            (1, "hello", Some([7; 3]))
        );
        let header = read_header::<_, String>(&mut reader, STALL).await.unwrap();
        let (message, trailer) =
            read_payload_with_trailer::<_, String, [u8; 3]>(&mut reader, &header, &mut buf, STALL)
                .await
                .unwrap();
        assert_eq!((header.id, message.as_str(), trailer), (2, "plain", None));
        let (id, message): (u64, String) = read(&mut reader, &mut buf, STALL).await.unwrap();
        assert_eq!((id, message.as_str()), (3, "hello"));

        let mut extra = encode_with_trailer(4, &"hello".to_string(), &[7u8; 4]);
        let mut reader = extra.as_slice();
        let header = read_header::<_, String>(&mut reader, STALL).await.unwrap();
        let result =
            read_payload_with_trailer::<_, String, [u8; 3]>(&mut reader, &header, &mut buf, STALL)
                .await;
        assert!(matches!(result, Err(FrameError::Trailing(1))), "{result:?}");
        extra.truncate(extra.len() - 2);
        let len = u32::try_from(extra.len() - 4).unwrap();
        extra[..4].copy_from_slice(&len.to_be_bytes());
        let mut reader = extra.as_slice();
        let header = read_header::<_, String>(&mut reader, STALL).await.unwrap();
        let result =
            read_payload_with_trailer::<_, String, [u8; 3]>(&mut reader, &header, &mut buf, STALL)
                .await;
        assert!(matches!(result, Err(FrameError::Decode(_))), "{result:?}");
    }

    #[tokio::test]
    async fn rejects_bad_lengths_and_garbage() {
        let mut buf = Vec::new();
        let short = [0u8, 0, 0, 3, 1, 2, 3];
        assert!(matches!(
            read::<_, String>(&mut &short[..], &mut buf, STALL).await,
            Err(FrameError::Length(3))
        ));
        let huge = u32::MAX.to_be_bytes();
        assert!(matches!(
            read::<_, String>(&mut &huge[..], &mut buf, STALL).await,
            Err(FrameError::Length(_))
        ));
        let mut garbage = 9u32.to_be_bytes().to_vec();
        garbage.extend_from_slice(&[0; 8]);
        garbage.push(0xff);
        assert!(matches!(
            read::<_, String>(&mut garbage.as_slice(), &mut buf, STALL).await,
            Err(FrameError::Decode(_))
        ));
    }

    /// A header announcing the largest frame, then the end of the stream:
    /// the read fails having allocated about one chunk, not 256 MiB.
    #[tokio::test]
    async fn a_huge_header_without_its_body_allocates_only_what_arrived() {
        let mut wire = header(MAX_FRAME as u32, 1, 1);
        wire.extend_from_slice(&[0xaa; 1000]);
        let mut buf = Vec::new();
        let result = read::<_, Kinds>(&mut wire.as_slice(), &mut buf, STALL).await;
        assert!(matches!(result, Err(FrameError::Io(_))), "{result:?}");
        assert!(
            buf.capacity() <= 2 * CHUNK,
            "{} bytes allocated for 1 KB received",
            buf.capacity()
        );
    }

    /// A large frame arriving in full still reads, and its buffer is not
    /// kept afterwards.
    #[tokio::test]
    async fn a_large_frame_reads_in_chunks_and_its_buffer_is_freed() {
        let body = vec![7u8; 3 * KEEP + 5];
        let wire = encode(9, &Kinds::Large(body.clone()));
        let mut buf = Vec::new();
        let (id, message) = read::<_, Kinds>(&mut wire.as_slice(), &mut buf, STALL)
            .await
            .unwrap();
        assert!(matches!(message, Kinds::Large(b) if b == body));
        assert_eq!(id, 9);
        assert!(buf.capacity() <= KEEP);
    }

    /// The cap is the kind's: a small kind may not announce what a large
    /// one may, and is refused before any of its payload is read.
    #[tokio::test]
    async fn each_kind_has_its_own_cap() {
        let mut buf = Vec::new();
        let small = header(65, 1, 0);
        assert!(matches!(
            read::<_, Kinds>(&mut small.as_slice(), &mut buf, STALL).await,
            Err(FrameError::Oversized {
                tag: 0,
                len: 65,
                cap: 64
            })
        ));
        assert_eq!(buf.capacity(), 0);
        let wire = encode(2, &Kinds::Small(vec![1; 40]));
        let (_, message) = read::<_, Kinds>(&mut wire.as_slice(), &mut buf, STALL)
            .await
            .unwrap();
        assert!(matches!(message, Kinds::Small(b) if b.len() == 40));
    }

    /// An idle stream waits for its next frame as long as it takes; a
    /// frame that stops half-way fails after the stall timeout, whether it
    /// stops in its header or in its payload.
    #[tokio::test(start_paused = true)]
    async fn a_stall_inside_a_frame_times_out_but_idling_between_frames_does_not() {
        let stall = Duration::from_millis(100);
        let (mut peer, mut node) = tokio::io::duplex(1 << 16);
        let mut buf = Vec::new();
        let idle = tokio::time::timeout(
            Duration::from_secs(3600),
            read::<_, Kinds>(&mut node, &mut buf, stall),
        )
        .await;
        assert!(idle.is_err(), "an idle stream is not an error: {idle:?}");

        peer.write_all(&[0, 0]).await.unwrap();
        let result = read::<_, Kinds>(&mut node, &mut buf, stall).await;
        assert!(matches!(result, Err(FrameError::Stalled(_))), "{result:?}");

        let (mut peer, mut node) = tokio::io::duplex(1 << 16);
        let mut wire = header(1000, 3, 1);
        wire.extend_from_slice(&[0; 100]);
        peer.write_all(&wire).await.unwrap();
        let result = read::<_, Kinds>(&mut node, &mut buf, stall).await;
        assert!(matches!(result, Err(FrameError::Stalled(_))), "{result:?}");
    }

    /// With a stall timeout, the writer gives up on a peer that takes
    /// nothing; frames it could hand over are dropped as they go.
    #[tokio::test(start_paused = true)]
    async fn the_writer_gives_up_on_a_peer_that_reads_nothing() {
        let (_peer, node) = tokio::io::duplex(1 << 10);
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let writer = tokio::spawn(write_loop(node, rx, Some(Duration::from_millis(100))));
        tx.send(vec![1u8; 1 << 20]).unwrap();
        let finished = tokio::time::timeout(Duration::from_secs(60), writer).await;
        assert!(finished.is_ok(), "the writer still waits for the peer");
        assert!(tx.send(Vec::new()).is_err(), "the queue is closed");
    }
}
