//! A bound on the client connections the process holds at once (`HTTP_MAX_CONNECTIONS`), a
//! bound on those of one client address that have not sent their first request's head yet
//! (`HTTP_MAX_PENDING_CONNECTIONS_PER_ADDRESS`), and an idle timeout that closes connections
//! nobody uses (`HTTP_IDLE_TIMEOUT_SECONDS`).
//!
//! Why: every open connection costs the process memory of its own (hyper's read and write
//! buffers and the connection's task: about 30 KiB once it has served a request, measured with
//! heaptrack), whether or not its request is admitted, so the in-flight bounds (`in_flight.rs`)
//! alone leave memory growing with the number of clients. A connection past the bound is
//! answered 503 `overloaded` with `Retry-After` and closed, its request discarded unhandled
//! (a few bytes and a short task, at most `MAX_REFUSALS` at a time): clients hear that the
//! service is full rather than waiting in the kernel's queue until their connect times out.
//! Past that many refusals under way, an excess connection is closed unanswered.
//!
//! An HTTP/1.1 client takes an answer that arrives before its request is written, or a close
//! while its request is still unread, for a broken connection (not for the 503), so a refusal
//! waits for the end of the request's head before answering and, after answering, reads
//! until the client closes, each within a bound; a connection on which nothing is asked
//! within that bound (pooling clients open some ahead of need) is closed unanswered, as an
//! idle connection may be.
//!
//! The idle timeout is what keeps the bound from being filled by connections that send
//! nothing: a connection with no bytes read or written for that long is closed (as if the
//! client had hung up). It must exceed the longest long-poll (a waiting request reads and
//! writes nothing until it is answered); the configuration checks that. A connection that
//! sends a byte now and then is not idle: the request head's deadline
//! (`connection_server.rs`) closes it. Until that deadline, one address could still hold
//! every slot with such connections, so an address may have only so many connections that
//! have not sent a complete request head yet (TLS handshakes included) once half the slots
//! are held; past that, a new one of that address is refused like one past the bound.
//! Connections that have sent their head are not counted: a factory behind one NAT address may
//! hold as many busy connections as it likes.
//!
//! A served connection's close lingers (`lingering_close.rs`): once the server has shut its
//! side, what the client still sends is read and dropped until it closes, within bounds, so
//! that an answer sent before the request's body was read (a 413) is not lost to a reset.
//!
//! Must not: look at what is sent beyond the end of a refused request's head (it is HTTP's
//! business), or close a connection that moves.

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{ready, Context, Poll};
use std::time::Duration;

use axum::response::IntoResponse;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::{Instant, Sleep};

use super::connection_server::{HeadArrived, ServedConnection};
use super::lingering_close::Linger;
use super::{ApiError, InFlightBound};
use crate::tls::ClientCertificate;

/// `HTTP_MAX_CONNECTIONS`, `HTTP_MAX_PENDING_CONNECTIONS_PER_ADDRESS`,
/// `HTTP_IDLE_TIMEOUT_SECONDS` and `HTTP_HEADER_READ_TIMEOUT_SECONDS`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    pub max_connections: usize,
    pub max_pending_per_address: usize,
    pub idle_timeout: Duration,
    /// How long a request's head may take to arrive (`connection_server.rs`).
    pub header_read_timeout: Duration,
}

impl Default for ConnectionLimits {
    /// Idle for a minute: twice the longest long-poll. A request's head within 20 s (hyper's
    /// default is 30; a slow client's head takes a round trip or two).
    fn default() -> Self {
        Self {
            max_connections: InFlightBound::Connections.default_max(),
            max_pending_per_address: 64,
            idle_timeout: Duration::from_secs(60),
            header_read_timeout: Duration::from_secs(20),
        }
    }
}

/// The connections of each client address that have not sent their first request's head.
#[derive(Default)]
struct PendingHeads {
    by_address: Mutex<HashMap<IpAddr, usize>>,
}

impl PendingHeads {
    /// Counts a new connection of `address`, unless it already has `max` pending.
    fn enter(self: &Arc<Self>, address: IpAddr, max: Option<usize>) -> Option<PendingHead> {
        let mut by_address = self.lock();
        let pending = by_address.entry(address).or_default();
        if max.is_some_and(|max| *pending >= max) {
            return None;
        }
        *pending += 1;
        Some(PendingHead {
            heads: self.clone(),
            address,
            arrived: AtomicBool::new(false),
        })
    }

    fn leave(&self, address: IpAddr) {
        let mut by_address = self.lock();
        if let Some(pending) = by_address.get_mut(&address) {
            *pending -= 1;
            if *pending == 0 {
                by_address.remove(&address);
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<IpAddr, usize>> {
        self.by_address.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// One connection counted among its address's pending ones until its first request's head
/// arrives or it closes.
struct PendingHead {
    heads: Arc<PendingHeads>,
    address: IpAddr,
    arrived: AtomicBool,
}

impl PendingHead {
    fn arrived(&self) {
        if !self.arrived.swap(true, Ordering::AcqRel) {
            self.heads.leave(self.address);
        }
    }
}

impl Drop for PendingHead {
    fn drop(&mut self) {
        self.arrived();
    }
}

/// A listener that holds at most `max` connections at once.
pub struct BoundedListener {
    inner: TcpListener,
    slots: Arc<Semaphore>,
    max: usize,
    idle_timeout: Duration,
    pending_heads: Arc<PendingHeads>,
    max_pending_per_address: usize,
    /// Connections being answered 503 right now: past this many, an excess connection is
    /// closed without an answer (a flood must not cost unbounded tasks either).
    refusals: Arc<Semaphore>,
    /// Whether an excess connection is answered 503 (plain HTTP) or closed (TLS).
    answer_refusals: bool,
}

/// How many excess connections may be answered at once (a refusal usually takes a round trip
/// or two, at most twice `REFUSAL_READ_WAIT`, and about 2 KiB; past
/// this many an excess connection is closed unanswered).
const MAX_REFUSALS: usize = 1024;

/// How long a refusal waits for the request's head to arrive (it usually follows the
/// connection at once, but a client on a saturated machine can take a while), and then for
/// the client to close: a refusal takes at most twice this.
const REFUSAL_READ_WAIT: Duration = Duration::from_secs(1);

/// The most a refusal reads while waiting for the end of the request's head.
const REFUSAL_MAX_HEAD: usize = 16 * 1024;

impl BoundedListener {
    pub fn new(inner: TcpListener, limits: ConnectionLimits) -> Self {
        Self {
            inner,
            slots: Arc::new(Semaphore::new(limits.max_connections.max(1))),
            max: limits.max_connections.max(1),
            idle_timeout: limits.idle_timeout,
            pending_heads: Arc::default(),
            max_pending_per_address: limits.max_pending_per_address.max(1),
            refusals: Arc::new(Semaphore::new(MAX_REFUSALS)),
            answer_refusals: true,
        }
    }

    /// Connections past the bound are closed unanswered: for TLS, where a plain-text 503
    /// means nothing to the client and an answer would first cost a handshake.
    pub fn closing_refusals(self) -> Self {
        Self {
            answer_refusals: false,
            ..self
        }
    }
}

impl axum::serve::Listener for BoundedListener {
    type Io = BoundedConnection;
    type Addr = std::net::SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        let (stream, addr, slot, pending) = loop {
            let (stream, addr) = axum::serve::Listener::accept(&mut self.inner).await;
            // The per-address bound applies once half the connections are held: a burst of
            // new connections from one address (a NAT, a load test) is not refused while there
            // is room, and under pressure no address keeps more than its share waiting.
            let under_pressure = self.slots.available_permits() <= self.max / 2;
            let pending = self.pending_heads.enter(
                addr.ip(),
                under_pressure.then_some(self.max_pending_per_address),
            );
            let bound = match pending {
                Some(pending) => match self.slots.clone().try_acquire_owned() {
                    Ok(slot) => break (stream, addr, slot, pending),
                    Err(_) => InFlightBound::Connections,
                },
                None => InFlightBound::PendingConnectionsPerAddress,
            };
            // Past a bound: answered 503, unless `MAX_REFUSALS` answers are under way (a
            // flood must not cost unbounded tasks either): then closed unanswered.
            metrics::counter!("requests_shed_total", "bound" => bound.name()).increment(1);
            if !self.answer_refusals {
                continue;
            }
            let Ok(refusal) = self.refusals.clone().try_acquire_owned() else {
                continue;
            };
            let max = match bound {
                InFlightBound::PendingConnectionsPerAddress => self.max_pending_per_address,
                _ => self.max,
            };
            tokio::spawn(async move {
                refuse(stream, bound, max).await;
                drop(refusal);
            });
        };
        let pending = Arc::new(pending);
        metrics::gauge!("http_connections").increment(1.0);
        let connection = BoundedConnection {
            stream,
            _slot: slot,
            idle_timeout: self.idle_timeout,
            idle: Box::pin(tokio::time::sleep(self.idle_timeout)),
            moves: 0,
            moves_when_armed: 0,
            head_arrived: Arc::new(move || pending.arrived()),
            linger: None,
        };
        (connection, addr)
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.inner.local_addr()
    }
}

/// Answers an excess connection 503 `overloaded` (the one problem mapping's body and
/// headers, `Retry-After` included) and closes it. Its request is read only to be discarded
/// (whatever it asked, nothing was done), up to the end of its head before answering, and
/// whatever follows until the client closes (the module's doc says why).
async fn refuse(mut stream: TcpStream, bound: InFlightBound, max: usize) {
    let mut sink = [0u8; 1024];
    let mut received = 0;
    let _ = tokio::time::timeout(
        REFUSAL_READ_WAIT,
        read_head(&mut stream, &mut sink, &mut received),
    )
    .await;
    if received == 0 {
        // Nothing asked (a pooling client may open a connection ahead of need and leave it
        // idle): closed without an answer, as any idle connection may be, since an answer
        // nobody asked for breaks the client's next request on it.
        return;
    }
    let response = ApiError::Overloaded { bound, max }.into_response();
    let (parts, body) = response.into_parts();
    let Ok(body) = axum::body::to_bytes(body, 64 * 1024).await else {
        return;
    };
    let mut head = format!(
        "HTTP/1.1 {} {}\r\n",
        parts.status.as_u16(),
        parts.status.canonical_reason().unwrap_or("")
    );
    for (name, value) in &parts.headers {
        if let Ok(value) = value.to_str() {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
    }
    head.push_str(&format!(
        "content-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    ));
    if stream.write_all(head.as_bytes()).await.is_err() || stream.write_all(&body).await.is_err() {
        return;
    }
    let _ = stream.shutdown().await;
    let _ = tokio::time::timeout(REFUSAL_READ_WAIT, async {
        while matches!(stream.read(&mut sink).await, Ok(n) if n > 0) {}
    })
    .await;
}

/// Reads until the end of an HTTP request's head (the blank line), the end of the stream or
/// `REFUSAL_MAX_HEAD` bytes, whichever comes first, keeping nothing but the count in
/// `received`.
async fn read_head(stream: &mut TcpStream, sink: &mut [u8], received: &mut usize) {
    const END: &[u8] = b"\r\n\r\n";
    // What was read since the last check, after the previous read's last three bytes: the
    // blank line may straddle two reads.
    let mut window: Vec<u8> = Vec::new();
    while *received < REFUSAL_MAX_HEAD {
        let n = match stream.read(sink).await {
            Ok(n) if n > 0 => n,
            _ => return,
        };
        *received += n;
        window.extend_from_slice(&sink[..n]);
        if window.windows(END.len()).any(|w| w == END) {
            return;
        }
        window.drain(..window.len().saturating_sub(END.len() - 1));
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
    /// Takes it off its address's pending connections (see the module's doc).
    head_arrived: HeadArrived,
    /// Set once the server has shut its side: what the client still sends is dropped until
    /// it closes too (`lingering_close.rs`: else an answer sent before the body was read, a
    /// 413, reaches the client as a reset).
    linger: Option<Linger>,
}

impl ServedConnection for BoundedConnection {
    fn client_certificate(&self) -> ClientCertificate {
        ClientCertificate::default()
    }

    fn head_arrived(&self) -> HeadArrived {
        self.head_arrived.clone()
    }
}

impl BoundedConnection {
    fn moved(&mut self) {
        self.moves = self.moves.wrapping_add(1);
    }

    /// Passes a write's result on, counting it as a move if it wrote anything.
    fn wrote(&mut self, result: Poll<io::Result<usize>>) -> Poll<io::Result<usize>> {
        if matches!(result, Poll::Ready(Ok(n)) if n > 0) {
            self.moved();
        }
        result
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
        this.wrote(result)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    /// The write side shut (after TLS's `close_notify`, when TLS runs over this connection),
    /// then a lingering close: done once the client has stopped sending, within bounds.
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        let linger = match &mut this.linger {
            Some(linger) => linger,
            None => {
                ready!(Pin::new(&mut this.stream).poll_shutdown(cx))?;
                this.linger.insert(Linger::start())
            }
        };
        ready!(linger.poll_discard(&mut this.stream, cx));
        Poll::Ready(Ok(()))
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        let result = Pin::new(&mut this.stream).poll_write_vectored(cx, bufs);
        this.wrote(result)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}
