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
    write_parts(w, &[payload]).await
}

/// Writes one frame whose payload is `parts` one after the other, and flushes it: a tag byte
/// and a large body go out without first being copied into one buffer (a metadata message
/// can be several MB, and the copy would be held beside it, at the daemon's peak).
pub async fn write_parts(
    w: &mut (impl AsyncWrite + Unpin),
    parts: &[&[u8]],
) -> std::io::Result<()> {
    let len: usize = parts.iter().map(|p| p.len()).sum();
    let len = u32::try_from(len).map_err(|_| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("a frame of {len} bytes"),
        )
    })?;
    w.write_all(&len.to_be_bytes()).await?;
    for part in parts {
        w.write_all(part).await?;
    }
    w.flush().await
}
