//! A listener that speaks TLS on the connections the connection bound admits. The handshake
//! runs when the connection is first read or written, on the connection's own task, so the
//! accept loop never waits for a client.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{ready, Context, Poll};
use std::time::Duration;

use rustls::pki_types::CertificateDer;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Sleep;
use tokio_rustls::server::TlsStream;
use tokio_rustls::{Accept, TlsAcceptor};

use crate::http::{BoundedConnection, BoundedListener, HeadArrived, ServedConnection};

/// A client that has not finished its handshake after this long is disconnected.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The verified certificate a client presented, if any (leaf only). Set once its
/// connection's handshake is done, which is before any request on it is read; on a plain
/// HTTP listener never set.
#[derive(Clone, Debug, Default)]
pub struct ClientCertificate(Arc<OnceLock<Option<CertificateDer<'static>>>>);

impl ClientCertificate {
    /// The client's certificate (DER), verified against `TLS_CLIENT_CA_PATH` or a tenant's
    /// issuing CA.
    pub fn der(&self) -> Option<&CertificateDer<'static>> {
        self.0.get().and_then(Option::as_ref)
    }
}

pub struct TlsListener {
    inner: BoundedListener,
    acceptor: TlsAcceptor,
}

impl TlsListener {
    /// `inner` should close excess connections unanswered (its plain-text 503 would mean
    /// nothing to a TLS client): [`BoundedListener::closing_refusals`].
    pub fn new(inner: BoundedListener, acceptor: TlsAcceptor) -> Self {
        Self { inner, acceptor }
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsConnection;
    type Addr = std::net::SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        let (connection, addr) = self.inner.accept().await;
        let head_arrived = connection.head_arrived();
        let io = TlsConnection {
            head_arrived,
            state: State::Handshaking {
                accept: Box::new(self.acceptor.accept(connection)),
                deadline: Box::pin(tokio::time::sleep(HANDSHAKE_TIMEOUT)),
            },
            client_certificate: ClientCertificate::default(),
        };
        (io, addr)
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        axum::serve::Listener::local_addr(&self.inner)
    }
}

/// One client's TLS connection, its handshake done on first use.
pub struct TlsConnection {
    state: State,
    client_certificate: ClientCertificate,
    head_arrived: HeadArrived,
}

impl ServedConnection for TlsConnection {
    fn client_certificate(&self) -> ClientCertificate {
        self.client_certificate.clone()
    }

    fn head_arrived(&self) -> HeadArrived {
        self.head_arrived.clone()
    }
}

enum State {
    /// Boxed, as the established stream is: each is large, and only one is ever held.
    Handshaking {
        accept: Box<Accept<BoundedConnection>>,
        deadline: Pin<Box<Sleep>>,
    },
    Ready(Box<TlsStream<BoundedConnection>>),
    Failed,
}

impl TlsConnection {
    /// Drives the handshake; ready once it is done (then always ready).
    fn poll_handshake(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let State::Handshaking { accept, deadline } = &mut self.state else {
            return Poll::Ready(match self.state {
                State::Failed => Err(io::ErrorKind::NotConnected.into()),
                _ => Ok(()),
            });
        };
        let outcome = match Pin::new(accept.as_mut()).poll(cx) {
            Poll::Ready(outcome) => outcome,
            Poll::Pending if deadline.as_mut().poll(cx).is_ready() => {
                Err(io::ErrorKind::TimedOut.into())
            }
            Poll::Pending => return Poll::Pending,
        };
        match outcome {
            Ok(stream) => {
                let leaf = stream
                    .get_ref()
                    .1
                    .peer_certificates()
                    .and_then(<[_]>::first)
                    .map(|cert| cert.clone().into_owned());
                let _ = self.client_certificate.0.set(leaf);
                self.state = State::Ready(Box::new(stream));
                Poll::Ready(Ok(()))
            }
            Err(error) => {
                // A client's business (wrong CA, no common cipher, a port scan): counted,
                // logged quietly.
                metrics::counter!("tls_handshake_failures_total").increment(1);
                tracing::debug!(%error, "TLS handshake failed");
                self.state = State::Failed;
                Poll::Ready(Err(error))
            }
        }
    }

    fn stream(&mut self) -> Pin<&mut TlsStream<BoundedConnection>> {
        match &mut self.state {
            State::Ready(stream) => Pin::new(stream.as_mut()),
            _ => unreachable!("the handshake is polled to completion first"),
        }
    }
}

impl AsyncRead for TlsConnection {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        ready!(self.poll_handshake(cx))?;
        self.stream().poll_read(cx, buf)
    }
}

impl AsyncWrite for TlsConnection {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        ready!(self.poll_handshake(cx))?;
        self.stream().poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.poll_handshake(cx))?;
        self.stream().poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.state {
            State::Ready(_) => self.stream().poll_shutdown(cx),
            _ => Poll::Ready(Ok(())),
        }
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        ready!(self.poll_handshake(cx))?;
        self.stream().poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        true
    }
}
