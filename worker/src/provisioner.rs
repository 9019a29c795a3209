//! The provisioner consumer: takes certificate requests (registrations and renewals) off
//! JetStream and settles them through `app::ProvisioningService`, many at once
//! (`PROVISIONER_IN_FLIGHT`): their reads and appends overlap, and outcomes appended together
//! share a transaction (the event store's group commit); signatures are bounded separately
//! by the CA.
//!
//! Each message is acknowledged only after its outcome is recorded in the event store; while
//! the CA works, in-progress acks keep the server from handing it to another worker. A
//! failure while Postgres is down is held until it is back (an outage is not the message's
//! failure); any other failure is redelivered with backoff, and after `CONSUMER_MAX_DELIVER`
//! such failures the message becomes a dead letter. A redelivered request that was already
//! settled issues nothing.
//!
//! A message is a notification: it names the device, and the provisioner signs the request
//! the device's events hold (see `app::ProvisioningService::provision`).

use std::sync::Arc;

use app::{
    EventEnvelope, ProvisioningCause, ProvisioningOutcome, ProvisioningService, PublicEvent,
};
use async_nats::jetstream::consumer::{pull, Consumer};
use async_trait::async_trait;
use futures::stream::FuturesUnordered;
use futures::StreamExt;
use nats::headers;

use tracing::Instrument;

use crate::delivery::{consumer_span, header, Deliveries, Failure};
use crate::intake::Received;
use crate::message_handler::{HandlingError, MessageHandler};
use bootstrap::describe;

pub struct Provisioner {
    service: Arc<ProvisioningService>,
    deliveries: Deliveries,
    /// Requests held and settled at once.
    in_flight: usize,
}

impl Provisioner {
    pub fn new(
        service: Arc<ProvisioningService>,
        deliveries: Deliveries,
        in_flight: usize,
    ) -> Self {
        Self {
            service,
            deliveries,
            in_flight,
        }
    }

    /// Consumes until cancelled, then lets the requests in hand finish.
    /// (The intake stops at cancellation, see `Deliveries::receive`.)
    async fn run(&self, consumer: Consumer<pull::Config>) -> Result<(), async_nats::Error> {
        let mut intake = self.deliveries.receive(consumer, self.in_flight);
        let mut running = FuturesUnordered::new();
        let ended = loop {
            tokio::select! {
                received = intake.recv() => match received {
                    Some(Ok(received)) => running.push(self.handle(received)),
                    Some(Err(e)) => break Err(e),
                    None => break Ok(()),
                },
                Some(()) = running.next(), if !running.is_empty() => {}
            }
        };
        while running.next().await.is_some() {}
        ended
    }

    async fn handle(&self, received: Received) {
        let message = &received.message;
        let envelope: EventEnvelope = match serde_json::from_slice(&message.payload) {
            Ok(envelope) => envelope,
            Err(e) => {
                let error = format!("not an event envelope: {e}");
                return self
                    .deliveries
                    .failed(message, Failure::Permanent, &error)
                    .await;
            }
        };
        let incoming = header(message, headers::TRACEPARENT);
        let span = consumer_span(
            "provision certificate",
            message,
            &envelope,
            incoming.as_deref(),
        );
        if !is_certificate_request(&envelope) {
            // Not a certificate request: nothing to do (the subject filter normally spares us).
            return self.deliveries.succeeded(message).await;
        }
        let delivered = message.info().map_or(1, |i| i.delivered);
        // The outcome's events continue the trace from this span when traces are exported.
        let cause = provisioning_cause(&envelope, bootstrap::traceparent_of(&span).or(incoming));
        let started = std::time::Instant::now();
        // Every provisioning failure is transient; whether it counts against the message
        // depends on whether Postgres answers (see `Deliveries::through_outages`).
        let outcome = self
            .deliveries
            .through_outages(
                1,
                |_| true,
                || self.service.provision(envelope.subject, cause.clone()),
            )
            .instrument(span)
            .await;
        metrics::histogram!("worker_job_seconds", "consumer" => self.deliveries.consumer().to_owned())
            .record(started.elapsed().as_secs_f64());
        match outcome {
            Ok(outcome) => {
                tracing::info!(
                    consumer = self.deliveries.consumer(),
                    event_id = %envelope.id,
                    subject = %message.subject,
                    delivered,
                    device_id = %envelope.subject,
                    outcome = ?outcome,
                    "certificate request settled"
                );
                let label = match outcome {
                    ProvisioningOutcome::Issued => "issued",
                    ProvisioningOutcome::Failed => "failed",
                    ProvisioningOutcome::AlreadySettled => "already_settled",
                };
                metrics::counter!("provisioning_outcomes_total", "outcome" => label).increment(1);
                self.deliveries.succeeded(message).await;
            }
            Err(e) => {
                self.deliveries
                    .failed(message, Failure::Transient, &describe(&e))
                    .await
            }
        }
    }
}

#[async_trait]
impl MessageHandler for Provisioner {
    async fn consume(&self, consumer: Consumer<pull::Config>) -> Result<(), async_nats::Error> {
        self.run(consumer).await
    }

    async fn handle_again(&self, envelope: &EventEnvelope) -> Result<(), HandlingError> {
        if !is_certificate_request(envelope) {
            return Ok(());
        }
        self.service
            .provision(envelope.subject, provisioning_cause(envelope, None))
            .await?;
        Ok(())
    }
}

/// Whether the message announces a certificate request (a registration or a renewal). Only
/// its device id is used: the request itself is read from the event store.
fn is_certificate_request(envelope: &EventEnvelope) -> bool {
    matches!(
        envelope.event,
        PublicEvent::DeviceRegistered { .. } | PublicEvent::CertificateRenewalRequested { .. }
    )
}

/// Where the outcome command comes from: the provisioner, caused by this message.
fn provisioning_cause(envelope: &EventEnvelope, traceparent: Option<String>) -> ProvisioningCause {
    ProvisioningCause {
        actor: "worker:provisioner",
        correlation_id: envelope.id.to_string(),
        traceparent,
    }
}
