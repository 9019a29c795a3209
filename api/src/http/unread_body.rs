//! Middleware: the part of a request's body its handler did not read is read and discarded
//! before the response goes, so that the connection stays usable.
//!
//! Why: many answers come before the body is read (a shed command, a bad token, a rate
//! limit: on purpose, they cost nothing). hyper then cannot tell where the next request
//! starts and closes the connection after the answer, without saying so in the response: a
//! pooling client that sends its next request on that connection sees it fail ("connection
//! closed before message completed"), and a client still writing its body may be reset
//! before it reads the answer. Reading the rest (at most `body_limit` bytes, within
//! `DRAIN_TIMEOUT`) keeps the connection alive; a body beyond that is left, and the connection
//! closes as before.
//!
//! Must not: hand anything read here to anyone, or hold the response back longer than
//! `DRAIN_TIMEOUT`.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use http_body::{Body as _, Frame, SizeHint};
use http_body_util::BodyExt;

/// The longest a response waits for the rest of its request's body.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(1);

/// See the module's doc. `body_limit`: `REQUEST_BODY_LIMIT_BYTES`.
pub async fn drain(State(body_limit): State<usize>, request: Request, next: Next) -> Response {
    if request.body().is_end_stream() {
        return next.run(request).await;
    }
    let (parts, body) = request.into_parts();
    let shared = Arc::new(Mutex::new(Some(body)));
    let request = Request::from_parts(
        parts,
        Body::new(SharedBody {
            inner: shared.clone(),
        }),
    );
    let response = next.run(request).await;
    let unread = shared.lock().unwrap_or_else(|e| e.into_inner()).take();
    if let Some(unread) = unread.filter(|body| !body.is_end_stream()) {
        let _ = tokio::time::timeout(DRAIN_TIMEOUT, discard(unread, body_limit)).await;
    }
    response
}

/// Reads `body` to its end, keeping nothing, unless it runs past `limit` bytes.
async fn discard(mut body: Body, limit: usize) {
    let mut read = 0usize;
    while let Some(Ok(frame)) = body.frame().await {
        read += frame.data_ref().map_or(0, Bytes::len);
        if read > limit {
            return;
        }
    }
}

/// The request's body as the handler sees it, left behind in `inner` if it is not read to
/// the end.
struct SharedBody {
    inner: Arc<Mutex<Option<Body>>>,
}

impl http_body::Body for SharedBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        match inner.as_mut() {
            Some(body) => Pin::new(body).poll_frame(cx),
            None => Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .is_none_or(http_body::Body::is_end_stream)
    }

    fn size_hint(&self) -> SizeHint {
        self.inner
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .map_or_else(|| SizeHint::with_exact(0), http_body::Body::size_hint)
    }
}
