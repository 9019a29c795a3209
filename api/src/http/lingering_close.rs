//! A lingering close: after the server has said its last word on a connection (its response,
//! then TLS's `close_notify` and a TCP FIN), what the client still sends is read and dropped
//! for a short while before the socket is closed.
//!
//! Why: an answer can come before the request's body has been read (413 for a body past
//! `REQUEST_BODY_LIMIT_BYTES`, 401 for a bad token: `http/unread_body.rs` reads at most the
//! body limit more). The connection then cannot be reused, and closing a socket with unread
//! bytes makes the kernel send a reset, which destroys the answer still on its way or unread
//! in the client's buffers: curl, still uploading, reported "Failed sending data to the peer"
//! (broken pipe) instead of the 413 for about half of the 1 MB bodies sent over TLS. Reading
//! on until the client closes (it does once it has the answer and the close) lets the answer
//! arrive, as nginx's and Apache's lingering close do.
//!
//! Bounds: reading stops at the client's close, at an error, after `LINGER_IDLE` without a
//! byte (a client that is not uploading, e.g. an idle pooled one, costs at most that), and in
//! any case after `LINGER_MAX`. Must not: hand anything it reads to anyone.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, ReadBuf};
use tokio::time::{Instant, Sleep};

/// The longest a closing connection waits for the next byte of what the client still sends.
pub const LINGER_IDLE: Duration = Duration::from_millis(500);
/// The longest a closing connection reads at all.
pub const LINGER_MAX: Duration = Duration::from_secs(5);

/// The reading-and-dropping part of a lingering close, started once the connection's write
/// side is shut.
pub struct Linger {
    idle_bound: Duration,
    idle: Pin<Box<Sleep>>,
    deadline: Pin<Box<Sleep>>,
}

impl Linger {
    pub fn start() -> Self {
        Self::with_bounds(LINGER_IDLE, LINGER_MAX)
    }

    fn with_bounds(idle: Duration, max: Duration) -> Self {
        Self {
            idle_bound: idle,
            idle: Box::pin(tokio::time::sleep(idle)),
            deadline: Box::pin(tokio::time::sleep(max)),
        }
    }

    /// Reads from `io` and drops what it reads; ready when the client has closed, the
    /// connection failed, or a bound was reached. Never an error: the close goes ahead
    /// whatever happened.
    pub fn poll_discard<R: AsyncRead + Unpin>(
        &mut self,
        io: &mut R,
        cx: &mut Context<'_>,
    ) -> Poll<()> {
        let mut scratch = [0u8; 8192];
        loop {
            if self.deadline.as_mut().poll(cx).is_ready() {
                return Poll::Ready(());
            }
            let mut buf = ReadBuf::new(&mut scratch);
            match Pin::new(&mut *io).poll_read(cx, &mut buf) {
                // The client closed (or reset): nothing left to wait for.
                Poll::Ready(Ok(())) if buf.filled().is_empty() => return Poll::Ready(()),
                Poll::Ready(Err(_)) => return Poll::Ready(()),
                Poll::Ready(Ok(())) => {
                    let next = Instant::now() + self.idle_bound;
                    self.idle.as_mut().reset(next);
                }
                Poll::Pending => return self.idle.as_mut().poll(cx),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::future::poll_fn;

    use tokio::io::AsyncWriteExt;

    use super::*;

    async fn linger(linger: &mut Linger, io: &mut tokio::io::DuplexStream) -> Duration {
        let started = std::time::Instant::now();
        poll_fn(|cx| linger.poll_discard(io, cx)).await;
        started.elapsed()
    }

    #[tokio::test]
    async fn reads_until_the_client_closes() {
        let (mut server, mut client) = tokio::io::duplex(1024);
        let writer = tokio::spawn(async move {
            // More than the pipe holds: only a reader lets the writer finish.
            for _ in 0..64 {
                client.write_all(&[7u8; 1024]).await.unwrap();
            }
            drop(client);
        });
        let mut bounds = Linger::with_bounds(Duration::from_secs(5), Duration::from_secs(10));
        let took = linger(&mut bounds, &mut server).await;
        writer.await.unwrap();
        assert!(took < Duration::from_secs(5), "{took:?}");
    }

    #[tokio::test]
    async fn a_client_that_sends_nothing_is_left_after_the_idle_bound() {
        let (mut server, _client) = tokio::io::duplex(1024);
        let mut bounds = Linger::with_bounds(Duration::from_millis(100), Duration::from_secs(10));
        let took = linger(&mut bounds, &mut server).await;
        assert!(
            took >= Duration::from_millis(100) && took < Duration::from_secs(5),
            "{took:?}"
        );
    }

    #[tokio::test]
    async fn a_client_that_never_stops_sending_is_left_at_the_deadline() {
        let (mut server, mut client) = tokio::io::duplex(1024);
        let writer = tokio::spawn(async move {
            while client.write_all(&[7u8; 256]).await.is_ok() {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        });
        let mut bounds =
            Linger::with_bounds(Duration::from_millis(200), Duration::from_millis(300));
        let took = linger(&mut bounds, &mut server).await;
        assert!(
            took >= Duration::from_millis(300) && took < Duration::from_secs(3),
            "{took:?}"
        );
        drop(server);
        writer.await.unwrap();
    }
}
