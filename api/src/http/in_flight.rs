//! Bounds on the requests this process works on at once, past which a request is shed: answered
//! at once 503 `overloaded` with `Retry-After`, never queued.
//!
//! Two bounds, one mechanism ([`InFlightLimit`]):
//! - **commands** (`COMMAND_MAX_IN_FLIGHT`): the [`AdmittedCommand`] extractor, the first
//!   argument of the HTTP API's command handlers, so that a shed command costs neither a token
//!   check nor reading its body (a request without a valid token is answered 401 before its
//!   body is read, so it holds the slot for no time); EST enrollments take their slot only
//!   once the device's credential is checked and the body read (`est.rs`), since checking
//!   that credential costs a database read;
//! - **all requests** but health and metrics (`REQUEST_MAX_IN_FLIGHT`): the [`admit`]
//!   middleware, because reads queue too: a read waits up to `DB_ACQUIRE_TIMEOUT_MS` for a pool
//!   connection (then 503), so past capacity the requests waiting grow with the offered rate,
//!   and with them the process's memory (a request in flight costs a connection's buffers and
//!   its handler's state).
//!
//! Why shed rather than queue: past capacity a queue only makes every admitted request later
//! than the last until they all time out, and its memory grows with the excess; refusing the
//! excess keeps the admitted requests fast and memory bounded, and tells clients to come back.
//!
//! A slot is given back when the request ends, however it ends (answered, failed, dropped at the
//! request deadline or when the client goes away): [`InFlight`] releases it on drop.
//!
//! Must not: wait for a slot (that is the unbounded queue this exists to prevent), or know what
//! a request does.

use std::sync::Arc;

use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::{ApiError, AppState};

/// Which bound: the `bound` label of `requests_in_flight` and `requests_shed_total`, and what
/// an `overloaded` problem's detail names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InFlightBound {
    /// `COMMAND_MAX_IN_FLIGHT`.
    Commands,
    /// `REQUEST_MAX_IN_FLIGHT`.
    Requests,
    /// `HTTP_MAX_CONNECTIONS` (`connection_limit.rs`): a connection past it is answered 503
    /// and closed.
    Connections,
    /// `HTTP_MAX_PENDING_CONNECTIONS_PER_ADDRESS` (`connection_limit.rs`): a connection of an
    /// address with that many connections still sending their first request's head is
    /// answered 503 and closed.
    PendingConnectionsPerAddress,
}

impl InFlightBound {
    /// The bound unless configured otherwise. Commands: far more than the pool serves at once
    /// (16 connections; a command holds one ~2 ms), so only a real excess is shed. Requests:
    /// room for `LONG_POLL_MAX`'s 500 waiting long-polls and three times as many others,
    /// while the memory they hold stays within a few tens of MiB (BENCHMARKS.md, "Overload").
    pub fn default_max(self) -> usize {
        match self {
            Self::Commands => 256,
            Self::Requests => 2_048,
            // About 30 KiB a connection once it has served a request, 40 with a waiting
            // long-poll (heaptrack): with `LONG_POLL_MAX`'s 500 and `COMMAND_MAX_IN_FLIGHT`'s
            // 256 in it, the api stays under 64 MiB at twice the load it can serve.
            Self::Connections => 768,
            Self::PendingConnectionsPerAddress => 64,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Commands => "commands",
            Self::Requests => "requests",
            Self::Connections => "connections",
            Self::PendingConnectionsPerAddress => "pending_connections_per_address",
        }
    }
}

/// How many requests of one kind may be in flight at once, and how many are.
pub struct InFlightLimit {
    bound: InFlightBound,
    max: usize,
    slots: Arc<Semaphore>,
}

impl InFlightLimit {
    /// The bound with its default maximum ([`InFlightBound::default_max`]).
    pub fn default_for(bound: InFlightBound) -> Self {
        Self::new(bound, bound.default_max())
    }

    pub fn new(bound: InFlightBound, max: usize) -> Self {
        Self {
            bound,
            max,
            slots: Arc::new(Semaphore::new(max)),
        }
    }

    /// A slot, or at once `Overloaded` when all `max` are taken.
    pub fn try_enter(&self) -> Result<InFlight, ApiError> {
        let Ok(permit) = self.slots.clone().try_acquire_owned() else {
            metrics::counter!("requests_shed_total", "bound" => self.bound.name()).increment(1);
            return Err(ApiError::Overloaded {
                bound: self.bound,
                max: self.max,
            });
        };
        let entered = InFlight {
            bound: self.bound,
            max: self.max,
            slots: self.slots.clone(),
            _permit: permit,
        };
        entered.report(0);
        Ok(entered)
    }
}

/// One request in flight; its slot is free again when this is dropped.
pub struct InFlight {
    bound: InFlightBound,
    max: usize,
    slots: Arc<Semaphore>,
    _permit: OwnedSemaphorePermit,
}

impl InFlight {
    /// The gauge, with `leaving` slots not counted any more. Approximate while slots move
    /// concurrently, exact once the process is quiet: a gauge, not an account.
    fn report(&self, leaving: usize) {
        let in_flight = self.max - self.slots.available_permits() - leaving;
        metrics::gauge!("requests_in_flight", "bound" => self.bound.name()).set(in_flight as f64);
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        // The permit is released after this body (fields drop last): do not count it.
        self.report(1);
    }
}

/// A command admitted under `COMMAND_MAX_IN_FLIGHT`, for as long as its handler runs.
pub struct AdmittedCommand(#[allow(dead_code)] InFlight);

impl FromRequestParts<AppState> for AdmittedCommand {
    type Rejection = ApiError;

    async fn from_request_parts(_: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        state.in_flight_commands.try_enter().map(Self)
    }
}

/// Middleware: a request admitted under `REQUEST_MAX_IN_FLIGHT` until its response is made.
pub async fn admit(
    State(limit): State<Arc<InFlightLimit>>,
    request: Request,
    next: Next,
) -> Response {
    match limit.try_enter() {
        Ok(_in_flight) => next.run(request).await,
        Err(shed) => shed.into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn past_the_bound_a_request_is_refused_at_once_and_a_dropped_one_frees_its_slot() {
        let limit = InFlightLimit::new(InFlightBound::Commands, 2);
        let first = limit.try_enter().unwrap();
        let _second = limit.try_enter().unwrap();
        assert!(matches!(
            limit.try_enter(),
            Err(ApiError::Overloaded {
                bound: InFlightBound::Commands,
                max: 2
            })
        ));
        drop(first);
        assert!(limit.try_enter().is_ok());
    }
}
