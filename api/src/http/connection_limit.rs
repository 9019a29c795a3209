//! A bound on the client connections the process holds at once (`HTTP_MAX_CONNECTIONS`), and
//! an idle timeout that closes connections nobody uses (`HTTP_IDLE_TIMEOUT_SECONDS`).
//!
//! Why: every open connection costs the process memory of its own (buffers, the connection's
//! task and its request's state: tens of KiB each, measured), whether or not its request is
//! admitted, so the in-flight bounds (`in_flight.rs`) alone leave memory growing with the
//! number of clients. Past the bound the listener simply stops accepting: new connections
//! wait in the kernel's accept queue, at no cost to the process, until a held one closes.
//!
//! The idle timeout is what keeps the bound from being filled by connections that send
//! nothing: a connection with no bytes read or written for that long is closed (as if the
//! client had hung up). It must exceed the longest long-poll (a waiting request reads and
//! writes nothing until it is answered); the configuration checks that.
//!
//! Must not: look at what is sent (it is HTTP's business), or close a connection that moves.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::{Instant, Sleep};

/// `HTTP_MAX_CONNECTIONS` and `HTTP_IDLE_TIMEOUT_SECONDS`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    pub max_connections: usize,
    pub idle_timeout: Duration,
}

impl Default for ConnectionLimits {
    /// About 55 KiB a connection (measured under overload): 1,024 keep the process within
    /// some 60 MiB of connection state, with room for `LONG_POLL_MAX`'s 1,000 waiting
    /// long-polls. Idle for a minute: twice the longest long-poll.
    fn default() -> Self {
        Self {
            max_connections: 1024,
            idle_timeout: Duration::from_secs(60),
        }
    }
}

/// A listener that holds at most `max` connections at once.
pub struct BoundedListener {
    inner: TcpListener,
    slots: Arc<Semaphore>,
    idle_timeout: Duration,
}

impl BoundedListener {
    pub fn new(inner: TcpListener, limits: ConnectionLimits) -> Self {
        Self {
            inner,
            slots: Arc::new(Semaphore::new(limits.max_connections.max(1))),
            idle_timeout: limits.idle_timeout,
        }
    }
}

impl axum::serve::Listener for BoundedListener {
    type Io = BoundedConnection;
    type Addr = std::net::SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        // Wait for a free slot before accepting: meanwhile clients queue in the kernel.
        let slot = self
            .slots
            .clone()
            .acquire_owned()
            .await
            .expect("the semaphore is never closed");
        let (stream, addr) = axum::serve::Listener::accept(&mut self.inner).await;
        metrics::gauge!("http_connections").increment(1.0);
        let connection = BoundedConnection {
            stream,
            _slot: slot,
            idle_timeout: self.idle_timeout,
            idle: Box::pin(tokio::time::sleep(self.idle_timeout)),
            moves: 0,
            moves_when_armed: 0,
        };
        (connection, addr)
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.inner.local_addr()
    }
}

/// An accepted connection, holding its slot until it is dropped (closed).
pub struct BoundedConnection {
    stream: TcpStream,
    _slot: OwnedSemaphorePermit,
    idle_timeout: Duration,
    /// Fires `idle_timeout` after it was armed; the connection is idle if nothing moved since.
    /// (Counting moves and re-arming only when it fires keeps the timer off the hot path:
    /// an idle connection is closed between one and two idle timeouts after its last byte.)
    idle: Pin<Box<Sleep>>,
    /// Reads and writes that moved bytes, and how many there had been when `idle` was armed.
    moves: u64,
    moves_when_armed: u64,
}

impl BoundedConnection {
    fn moved(&mut self) {
        self.moves = self.moves.wrapping_add(1);
    }

    /// Whether the idle timer fired with nothing moved since it was armed; re-arms it if
    /// something did.
    fn poll_idle(&mut self, cx: &mut Context<'_>) -> bool {
        loop {
            if self.idle.as_mut().poll(cx).is_pending() {
                return false;
            }
            if self.moves == self.moves_when_armed {
                return true;
            }
            self.moves_when_armed = self.moves;
            self.idle.as_mut().reset(Instant::now() + self.idle_timeout);
        }
    }
}

impl Drop for BoundedConnection {
    fn drop(&mut self) {
        metrics::gauge!("http_connections").decrement(1.0);
    }
}

impl AsyncRead for BoundedConnection {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        let before = buf.filled().len();
        match Pin::new(&mut this.stream).poll_read(cx, buf) {
            Poll::Ready(result) => {
                if buf.filled().len() > before {
                    this.moved();
                }
                Poll::Ready(result)
            }
            Poll::Pending if this.poll_idle(cx) => {
                metrics::counter!("http_connections_idle_closed_total").increment(1);
                // End of stream: the server closes the connection as if the client had.
                Poll::Ready(Ok(()))
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

impl AsyncWrite for BoundedConnection {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        let result = Pin::new(&mut this.stream).poll_write(cx, buf);
        if matches!(result, Poll::Ready(Ok(n)) if n > 0) {
            this.moved();
        }
        result
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        let result = Pin::new(&mut this.stream).poll_write_vectored(cx, bufs);
        if matches!(result, Poll::Ready(Ok(n)) if n > 0) {
            this.moved();
        }
        result
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}
