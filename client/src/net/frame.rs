//! Length-prefixed frames, `u32` big-endian length ‖ payload, as the metadata
//! (`/harp/meta/1`) and checkpoint (`/harp/checkpoints/1`) protocols carry them.

use futures::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Reads one frame of 1 to `max` bytes. A length outside that is `InvalidData` (the stream
/// cannot be trusted after it); a stream that ends is `UnexpectedEof`.
pub async fn read(r: &mut (impl AsyncRead + Unpin), max: usize) -> std::io::Result<Vec<u8>> {
    let mut len = [0u8; 4];
    r.read_exact(&mut len).await?;
    let len = u32::from_be_bytes(len) as usize;
    if len == 0 || len > max {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("frame of {len} bytes (1..={max})"),
        ));
    }
    let mut buf = vec![0u8; len];
    r.read_exact(&mut buf).await?;
    Ok(buf)
}

/// Writes one frame and flushes it.
pub async fn write(w: &mut (impl AsyncWrite + Unpin), payload: &[u8]) -> std::io::Result<()> {
    w.write_all(&(payload.len() as u32).to_be_bytes()).await?;
    w.write_all(payload).await?;
    w.flush().await
}
