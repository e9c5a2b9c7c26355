//! A reader of the agent's output that stops waiting once the run is over.
//!
//! An escaped process (outside the run's cgroup, or anywhere on a host
//! without cgroups) may hold the write end of the pipe open forever. Once the
//! run's processes are gone, [`Drained`] returns end-of-file as soon as no
//! more output is ready within [`QUIET`], so the run ends, its slot frees and
//! the shutdown drain completes.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, ReadBuf};
use tokio::sync::watch;

/// After the run is over, how long a read may wait for more output.
pub const QUIET: Duration = Duration::from_millis(200);

/// Tells the readers of one run that it is over.
pub fn over() -> (watch::Sender<bool>, watch::Receiver<bool>) {
    watch::channel(false)
}

/// Reads `inner` until its end, or until the run is over and it stays quiet.
pub struct Drained<R> {
    inner: R,
    over: Pin<Box<dyn Future<Output = ()> + Send>>,
    quiet: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl<R> Drained<R> {
    pub fn new(inner: R, mut over: watch::Receiver<bool>) -> Drained<R> {
        Drained {
            inner,
            over: Box::pin(async move {
                let _ = over.wait_for(|o| *o).await;
            }),
            quiet: None,
        }
    }
}

/// The pipe underneath, for settings such as its size.
impl<R: std::os::fd::AsFd> std::os::fd::AsFd for Drained<R> {
    fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.inner.as_fd()
    }
}

impl<R: AsyncRead + Unpin> AsyncRead for Drained<R> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(r) => {
                // Output keeps coming: the quiet period starts again.
                this.quiet = None;
                return Poll::Ready(r);
            }
            Poll::Pending => {}
        }
        if this.quiet.is_none() {
            if this.over.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            this.quiet = Some(Box::pin(tokio::time::sleep(QUIET)));
        }
        match this.quiet.as_mut().map(|q| q.as_mut().poll(cx)) {
            Some(Poll::Ready(())) => Poll::Ready(Ok(())),
            _ => Poll::Pending,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn a_held_pipe_ends_once_the_run_is_over_and_output_is_kept() {
        let (mut writer, reader) = tokio::io::duplex(64);
        let (tx, rx) = over();
        let mut drained = Drained::new(reader, rx);
        writer.write_all(b"before").await.unwrap();
        let mut buf = [0u8; 16];
        let n = drained.read(&mut buf).await.unwrap();
        assert_eq!(&buf[..n], b"before");
        // The writer stays open; the read only ends after the run is over.
        let pending =
            tokio::time::timeout(Duration::from_millis(300), drained.read(&mut buf)).await;
        assert!(pending.is_err(), "ended before the run was over");
        writer.write_all(b"late").await.unwrap();
        tx.send_replace(true);
        let n = drained.read(&mut buf).await.unwrap();
        assert_eq!(
            &buf[..n],
            b"late",
            "output written before the end is still read"
        );
        let started = std::time::Instant::now();
        assert_eq!(drained.read(&mut buf).await.unwrap(), 0);
        assert!(started.elapsed() < Duration::from_secs(2));
        drop(writer);
    }
}
