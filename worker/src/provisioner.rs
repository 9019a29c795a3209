//! The provisioner consumer's handler: settles certificate requests (registrations and
//! renewals) through `app::ProvisioningService`, many at once (`PROVISIONER_IN_FLIGHT`):
//! their reads and appends overlap, and outcomes appended together share a transaction (the
//! event store's group commit); signatures are bounded separately by the CA.
//!
//! Each message is acknowledged (by `nats`) only after its outcome is recorded in the event
//! store; while the CA works, in-progress acks keep the server from handing it to another
//! worker. A CA that does not answer (its key's HSM away, a signature that does not verify) is
//! [`Outcome::DependencyUnavailable`]: the request is held and tried again until the CA is
//! back. Every other failure is [`Outcome::Transient`]: while Postgres is down it is held until
//! Postgres is back (an outage is not the message's failure); otherwise it is redelivered
//! with backoff, and after `CONSUMER_MAX_DELIVER` such failures the message becomes a dead
//! letter. A redelivered request that was already settled issues nothing.
//!
//! A message is a notification: it names the device, and the provisioner signs the request
//! the device's events hold (see `app::ProvisioningService::provision`).

use std::sync::Arc;

use app::{
    EventEnvelope, ProvisioningCause, ProvisioningError, ProvisioningOutcome, ProvisioningService,
    PublicEvent,
};
use async_trait::async_trait;
use nats::{DeliveredEvent, EventHandler, Outcome, Pace};
use tracing::Instrument;

use crate::consumer_handler::{ConsumerHandler, HandlingError};
use crate::consumer_span::consumer_span;
use bootstrap::describe;

pub struct Provisioner {
    /// The consumer it handles for (in logs).
    consumer: String,
    service: Arc<ProvisioningService>,
    /// Requests held and settled at once.
    in_flight: usize,
}

impl Provisioner {
    pub fn new(
        consumer: impl Into<String>,
        service: Arc<ProvisioningService>,
        in_flight: usize,
    ) -> Self {
        Self {
            consumer: consumer.into(),
            service,
            in_flight,
        }
    }

    async fn provision(&self, event: &DeliveredEvent) -> Outcome {
        let envelope = &event.envelope;
        let span = consumer_span("provision certificate", event);
        if !is_certificate_request(envelope) {
            // Not a certificate request: nothing to do (the subject filter normally spares us).
            return Outcome::Done;
        }
        // The outcome's events continue the trace from this span when traces are exported.
        let cause = provisioning_cause(
            envelope,
            bootstrap::traceparent_of(&span).or_else(|| event.traceparent.clone()),
        );
        let outcome = self
            .service
            .provision(envelope.subject, cause)
            .instrument(span)
            .await;
        match outcome {
            Ok(outcome) => {
                tracing::info!(
                    consumer = %self.consumer,
                    event_id = %envelope.id,
                    subject = %event.subject,
                    delivered = event.delivered,
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
                Outcome::Done
            }
            // The CA not answering (its key's token away, a signature that does not verify)
            // is an outage: the request waits for it, and never becomes a dead letter.
            Err(e @ ProvisioningError::Ca(_)) => Outcome::DependencyUnavailable(describe(&e)),
            // Any other failure may be an outage's; whether it counts against the message
            // depends on whether Postgres answers (`nats` checks).
            Err(e) => Outcome::Transient(describe(&e)),
        }
    }
}

#[async_trait]
impl EventHandler for Provisioner {
    fn pace(&self) -> Pace {
        Pace::Concurrently {
            in_flight: self.in_flight,
        }
    }

    async fn handle(&self, events: &[DeliveredEvent]) -> Outcome {
        // One at a time, as its pace says; a batch would be settled as a whole.
        for event in events {
            let outcome = self.provision(event).await;
            if outcome != Outcome::Done {
                return outcome;
            }
        }
        Outcome::Done
    }
}

#[async_trait]
impl ConsumerHandler for Provisioner {
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
