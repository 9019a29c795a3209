//! The span of handling one delivered event, a child of the span that produced the event (its
//! `traceparent`), so that one trace follows a command across NATS.

use nats::DeliveredEvent;

/// The span `name` of handling `event`; `Span::none()` when traces are not exported, so that
/// the hot path creates nothing.
pub fn consumer_span(name: &str, event: &DeliveredEvent) -> tracing::Span {
    if !bootstrap::traces_enabled() {
        return tracing::Span::none();
    }
    let envelope = &event.envelope;
    let span = tracing::info_span!(
        "message",
        otel.name = name,
        otel.kind = "consumer",
        messaging.system = "nats",
        messaging.destination.name = %event.subject,
        messaging.message.id = %envelope.id,
        messaging.delivery_count = event.delivered,
        device_id = %envelope.subject,
        event_type = envelope.event_type(),
    );
    bootstrap::continue_trace(&span, event.traceparent.as_deref());
    span
}
