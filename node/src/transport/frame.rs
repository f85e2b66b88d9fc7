//! Framing on the stream: `u32` big-endian length of what follows, `u64`
//! big-endian request id, then the postcard-encoded message.

use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::io::{AsyncRead, AsyncReadExt};

/// Largest accepted frame (a replica message carries all siblings of a key).
pub const MAX_FRAME: usize = 256 << 20;

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

/// Why a frame could not be read.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// The stream failed or ended.
    #[error("stream: {0}")]
    Io(#[from] std::io::Error),
    /// A length outside `8..=MAX_FRAME`.
    #[error("frame length {0} is out of bounds")]
    Length(usize),
    /// The payload is not a valid message.
    #[error("undecodable frame: {0}")]
    Decode(#[from] postcard::Error),
}

/// Reads one frame; `buf` is reused between calls.
pub async fn read<R, T>(reader: &mut R, buf: &mut Vec<u8>) -> Result<(u64, T), FrameError>
where
    R: AsyncRead + Unpin,
    T: DeserializeOwned,
{
    let len = reader.read_u32().await? as usize;
    if !(8..=MAX_FRAME).contains(&len) {
        return Err(FrameError::Length(len));
    }
    let id = reader.read_u64().await?;
    buf.resize(len - 8, 0);
    reader.read_exact(buf).await?;
    Ok((id, postcard::from_bytes(buf)?))
}

/// Writes queued frames until the queue closes or the stream fails. Every
/// frame already queued when the socket becomes writable goes out in the
/// same write, up to `BATCH_BYTES`.
pub async fn write_loop<W>(mut writer: W, mut queue: tokio::sync::mpsc::UnboundedReceiver<Vec<u8>>)
where
    W: tokio::io::AsyncWrite + Unpin,
{
    use tokio::io::AsyncWriteExt;
    const BATCH_BYTES: usize = 256 << 10;
    let mut batch = Vec::with_capacity(BATCH_BYTES);
    while let Some(frame) = queue.recv().await {
        batch.extend_from_slice(&frame);
        // Let the tasks that are ready right now queue their frames too, so
        // they share this write.
        tokio::task::yield_now().await;
        while batch.len() < BATCH_BYTES {
            match queue.try_recv() {
                Ok(frame) => batch.extend_from_slice(&frame),
                Err(_) => break,
            }
        }
        if writer.write_all(&batch).await.is_err() || writer.flush().await.is_err() {
            return;
        }
        batch.clear();
    }
    let _ = writer.shutdown().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn frames_round_trip_back_to_back() {
        let mut wire = Vec::new();
        encode_into(&mut wire, 7, &"hello".to_string());
        encode_into(&mut wire, u64::MAX, &vec![1u32, 2, 3]);
        let mut reader = wire.as_slice();
        let mut buf = Vec::new();
        let (id, a): (u64, String) = read(&mut reader, &mut buf).await.unwrap();
        assert_eq!((id, a.as_str()), (7, "hello"));
        let (id, b): (u64, Vec<u32>) = read(&mut reader, &mut buf).await.unwrap();
        assert_eq!((id, b), (u64::MAX, vec![1, 2, 3]));
        assert!(matches!(
            read::<_, String>(&mut reader, &mut buf).await,
            Err(FrameError::Io(_))
        ));
    }

    #[tokio::test]
    async fn rejects_bad_lengths_and_garbage() {
        let mut buf = Vec::new();
        let short = [0u8, 0, 0, 3, 1, 2, 3];
        assert!(matches!(
            read::<_, String>(&mut &short[..], &mut buf).await,
            Err(FrameError::Length(3))
        ));
        let huge = u32::MAX.to_be_bytes();
        assert!(matches!(
            read::<_, String>(&mut &huge[..], &mut buf).await,
            Err(FrameError::Length(_))
        ));
        let mut garbage = 9u32.to_be_bytes().to_vec();
        garbage.extend_from_slice(&[0; 8]);
        garbage.push(0xff);
        assert!(matches!(
            read::<_, String>(&mut garbage.as_slice(), &mut buf).await,
            Err(FrameError::Decode(_))
        ));
    }
}
