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
        got = header_read(got, from.read(&mut header[got..]).await?)?;
    }
    let mut body = Zeroizing::new(vec![0u8; body_len(header, max)?]);
    from.read_exact(&mut body).await?;
    Ok(body)
}

/// [`read_frame`] from a blocking stream (the CLI's client).
pub fn read_frame_blocking(
    from: &mut impl std::io::Read,
    max: usize,
) -> Result<Zeroizing<Vec<u8>>, ReadError> {
    let mut header = [0u8; HEADER_LEN];
    let mut got = 0;
    while got < HEADER_LEN {
        got = match from.read(&mut header[got..]) {
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            read => header_read(got, read?)?,
        };
    }
    let mut body = Zeroizing::new(vec![0u8; body_len(header, max)?]);
    from.read_exact(&mut body)?;
    Ok(body)
}

/// How much of a header is in after a read of `n` bytes past `got`: the
/// connection closed before any is the end between frames; within one, a
/// frame cut short.
fn header_read(got: usize, n: usize) -> Result<usize, ReadError> {
    match n {
        0 if got == 0 => Err(ReadError::Closed),
        0 => Err(std::io::Error::from(std::io::ErrorKind::UnexpectedEof).into()),
        n => Ok(got + n),
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Hands out at most one byte per read, as a slow socket may.
    struct Trickle<'a>(&'a [u8]);

    impl std::io::Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            let Some((first, rest)) = self.0.split_first() else {
                return Ok(0);
            };
            match buf.first_mut() {
                Some(b) => *b = *first,
                None => return Ok(0),
            }
            self.0 = rest;
            Ok(1)
        }
    }

    #[test]
    fn a_blocking_read_takes_a_frame_however_it_trickles_in_and_tells_the_ends_apart() {
        let frame = encode(&"hello").unwrap();
        let mut two = frame.to_vec();
        two.extend_from_slice(&frame);
        let mut from = Trickle(&two);
        for _ in 0..2 {
            let body = read_frame_blocking(&mut from, 1024).unwrap();
            assert_eq!(&body[..], &frame[HEADER_LEN..]);
        }
        // Closed between frames: the end. Within a header or a body: cut short.
        assert!(matches!(
            read_frame_blocking(&mut from, 1024),
            Err(ReadError::Closed)
        ));
        for cut in [2, HEADER_LEN + 1] {
            let got = read_frame_blocking(&mut Trickle(&frame[..cut]), 1024);
            assert!(
                matches!(&got, Err(ReadError::Io(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof),
                "cut at {cut}: {got:?}"
            );
        }
        // Over the reader's limit: refused before the body is read.
        assert!(matches!(
            read_frame_blocking(&mut Trickle(&frame), 3),
            Err(ReadError::Protocol(_))
        ));
    }
}
