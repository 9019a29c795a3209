//! A deadline on the whole request, so that no client waits past it.
//!
//! A long-poll (`GET /v1/devices/{id}?wait=…`) is asked to wait: its handler extends the
//! deadline by the wait it accepted ([`RequestDeadline::extend`]), so a legitimate 30 s wait
//! is not cut short by a 10 s request timeout, while the work after the wait stays bounded.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tokio::sync::watch;
use tokio::time::Instant;

use super::ApiError;

/// The running request's deadline, in its extensions.
#[derive(Clone)]
pub struct RequestDeadline(Arc<watch::Sender<Duration>>);

impl RequestDeadline {
    /// Allows the request `wait` more than the request timeout (extensions do not add up:
    /// the largest one counts).
    pub fn extend(&self, wait: Duration) {
        self.0.send_if_modified(|extra| {
            let longer = wait > *extra;
            *extra = (*extra).max(wait);
            longer
        });
    }
}

pub async fn enforce(State(limit): State<Duration>, mut request: Request, next: Next) -> Response {
    let started = Instant::now();
    let (extension, mut extended) = watch::channel(Duration::ZERO);
    request
        .extensions_mut()
        .insert(RequestDeadline(Arc::new(extension)));
    let handler = next.run(request);
    tokio::pin!(handler);
    // Once the handler has dropped the sender, the deadline can no longer move.
    let mut can_move = true;
    loop {
        let deadline = started + limit + *extended.borrow_and_update();
        tokio::select! {
            response = &mut handler => return response,
            () = tokio::time::sleep_until(deadline) => {
                tracing::warn!(?limit, "request deadline exceeded");
                return ApiError::Timeout.into_response();
            }
            moved = extended.changed(), if can_move => can_move = moved.is_ok(),
        }
    }
}
