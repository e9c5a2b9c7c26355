//! Frames over a Unix stream, for both ends of the control socket: a
//! header, then a body of at most the limit the reading side sets. Bodies
//! are read into buffers that are zeroized when dropped.

use serde::Serialize;
use supervisor_protocol::{HEADER_LEN, ProtocolError, body_len, encode};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use zeroize::Zeroizing;

/// Why a frame could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The other side closed the connection between frames.
    #[error("the connection was closed")]
    Closed,
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("{0}")]
    Protocol(#[from] ProtocolError),
}

/// Reads one frame's body (at most `max` bytes).
pub async fn read_frame(
    from: &mut (impl AsyncRead + Unpin),
    max: usize,
) -> Result<Zeroizing<Vec<u8>>, ReadError> {
    let mut header = [0u8; HEADER_LEN];
    let mut got = 0;
    while got < HEADER_LEN {
        match from.read(&mut header[got..]).await? {
            0 if got == 0 => return Err(ReadError::Closed),
            0 => return Err(std::io::Error::from(std::io::ErrorKind::UnexpectedEof).into()),
            n => got += n,
        }
    }
    let len = body_len(header, max)?;
    let mut body = Zeroizing::new(vec![0u8; len]);
    from.read_exact(&mut body).await?;
    Ok(body)
}

/// Writes one frame carrying `msg`.
pub async fn write_msg(
    to: &mut (impl AsyncWrite + Unpin),
    msg: &impl Serialize,
) -> std::io::Result<()> {
    let frame = encode(msg).map_err(std::io::Error::other)?;
    write_frame(to, &frame).await
}

/// Writes an already encoded frame.
pub async fn write_frame(to: &mut (impl AsyncWrite + Unpin), frame: &[u8]) -> std::io::Result<()> {
    to.write_all(frame).await?;
    to.flush().await
}
