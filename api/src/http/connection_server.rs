//! Serves the router on the connections a listener accepts: hyper-util's HTTP/1 server (what
//! axum's `serve` runs), with a done-by deadline for every request's head and a graceful
//! shutdown.
//!
//! Why not axum's `serve`: it sets hyper up without a timer, so hyper's header-read timeout
//! never applies, and a client that sends one header byte every few seconds holds its
//! connection (and a slot of `HTTP_MAX_CONNECTIONS`) for as long as it likes: the idle timer
//! counts any byte as activity. Here a request's head must be complete within
//! `HTTP_HEADER_READ_TIMEOUT_SECONDS` of the server starting to wait for it (which, between
//! the requests of a kept-alive connection, also bounds how long it may sit idle), and its
//! body within the request deadline (`deadline.rs`: the handler reads it). And each
//! connection tells its listener when its first request's head has arrived
//! ([`ServedConnection::head_arrived`]), which is what the per-address bound on connections
//! still sending their first head counts (`connection_limit.rs`).
//!
//! Must not: look into requests (the router does), or keep a connection past the grace
//! period at shutdown.

use std::future::Future;
use std::io;
use std::time::Duration;

use axum::extract::connect_info::ConnectInfo;
use axum::Router;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::io::{AsyncRead, AsyncWrite};
use tower::ServiceExt;

use crate::tls::ClientCertificate;

/// What the server needs of an accepted connection besides its bytes.
pub trait ServedConnection: AsyncRead + AsyncWrite + Send + Unpin + 'static {
    /// The client's verified certificate (none on plain HTTP), handed to handlers as
    /// `ConnectInfo<ClientCertificate>`.
    fn client_certificate(&self) -> ClientCertificate;

    /// Called with every request's head as it arrives: what to tell the listener then.
    fn head_arrived(&self) -> HeadArrived;
}

/// Told when a connection's request head has arrived (idempotent): its listener stops
/// counting it among the connections still sending their first head.
pub type HeadArrived = std::sync::Arc<dyn Fn() + Send + Sync>;

/// Serves `router` on every connection `listener` accepts until `shutdown` resolves, then
/// stops accepting, lets each connection finish its request in flight (no more requests on
/// it) and gives them up to `grace`.
pub async fn serve<L>(
    mut listener: L,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
    grace: Duration,
    header_read_timeout: Duration,
) -> io::Result<()>
where
    L: axum::serve::Listener,
    L::Io: ServedConnection,
{
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(header_read_timeout);
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        let (io, _) = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut shutdown => break,
        };
        let connect_info = ConnectInfo(io.client_certificate());
        let arrived = io.head_arrived();
        let router = router.clone();
        let service = hyper::service::service_fn(move |mut request: hyper::Request<_>| {
            arrived();
            request.extensions_mut().insert(connect_info.clone());
            router.clone().oneshot(request)
        });
        let connection = graceful.watch(builder.serve_connection(TokioIo::new(io), service));
        tokio::spawn(async move {
            // A connection's end (the client went away, a deadline, a protocol error) is
            // the client's business.
            if let Err(error) = connection.await {
                tracing::debug!(%error, "connection ended");
            }
        });
    }
    drop(listener);
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(grace) => {
            tracing::warn!(?grace, "shutdown grace period over; abandoning in-flight requests");
        }
    }
    Ok(())
}
