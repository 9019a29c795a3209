//! The JetStream stream of domain events: its configuration, subjects and headers. This is a
//! public contract (analysts consume it), documented in `docs/events.md`: change both
//! together, and only compatibly.
//!
//! - Subject: `<prefix>.<tenant>.device.<EventType>`, e.g. `events.acme.device.DeviceRegistered`,
//!   so consumers filter by tenant (`events.acme.>`) or by type (`events.*.device.CertificateIssued`).
//! - Body: the versioned JSON envelope (`app::EventEnvelope`).
//! - Headers: see [`headers`].

use std::time::Duration;

use app::RecordedEvent;
use async_nats::jetstream::{self, stream};
use async_nats::HeaderMap;

/// Header names on every event message.
pub mod headers {
    /// The event id (JetStream deduplicates on it within the duplicate window).
    pub const MSG_ID: &str = "Nats-Msg-Id";
    /// W3C trace context of the command that produced the event.
    pub const TRACEPARENT: &str = "traceparent";
    pub const TENANT: &str = "Dp-Tenant";
    pub const AGGREGATE_ID: &str = "Dp-Aggregate-Id";
    pub const SEQUENCE: &str = "Dp-Sequence";
    /// Commit-order cursor (the same opaque value as the envelope's `position`).
    pub const POSITION: &str = "Dp-Position";
    pub const EVENT_TYPE: &str = "Dp-Event-Type";
}

#[derive(Debug, Clone)]
pub struct StreamSettings {
    /// JetStream stream name (e.g. `DEVICE_EVENTS`).
    pub name: String,
    /// First subject token (e.g. `events`). Tests use a unique one per run.
    pub subject_prefix: String,
    /// Must exceed the longest time a relay may take to republish after a failure.
    pub duplicate_window: Duration,
    /// How long events stay in the stream (Postgres keeps them forever; replay reads it).
    pub max_age: Duration,
    /// Copies of the stream on a cluster's servers (1 on a single server; 3 on a cluster of
    /// three or more survives the loss of any one). The consumers inherit it.
    pub replicas: usize,
}

impl StreamSettings {
    pub fn subject(&self, tenant: &str, event_type: &str) -> String {
        format!("{}.{tenant}.device.{event_type}", self.subject_prefix)
    }

    /// Every event of one type, whatever the tenant.
    pub fn subject_filter_for_type(&self, event_type: &str) -> String {
        format!("{}.*.device.{event_type}", self.subject_prefix)
    }

    /// Every event.
    pub fn all_subjects(&self) -> String {
        format!("{}.>", self.subject_prefix)
    }

    fn config(&self) -> stream::Config {
        stream::Config {
            name: self.name.clone(),
            subjects: vec![self.all_subjects()],
            storage: stream::StorageType::File,
            duplicate_window: self.duplicate_window,
            max_age: self.max_age,
            num_replicas: self.replicas,
            ..Default::default()
        }
    }
}

/// Creates the stream, or brings an existing one to this configuration.
pub async fn ensure_stream(
    js: &jetstream::Context,
    settings: &StreamSettings,
) -> Result<stream::Stream, async_nats::Error> {
    js.create_or_update_stream(settings.config()).await?;
    Ok(js.get_stream(&settings.name).await?)
}

/// One event as it goes on the stream.
pub struct EventMessage {
    pub subject: String,
    pub headers: HeaderMap,
    /// The JSON envelope.
    pub body: Vec<u8>,
}

impl EventMessage {
    pub fn into_publish(self) -> (String, jetstream::message::PublishMessage) {
        let publish = jetstream::message::PublishMessage::build()
            .payload(self.body.into())
            .headers(self.headers);
        (self.subject, publish)
    }
}

/// The message for one event: subject, headers and the JSON envelope.
pub fn message_for(
    settings: &StreamSettings,
    event: &RecordedEvent,
) -> Result<EventMessage, serde_json::Error> {
    let envelope = event.to_envelope();
    let body = serde_json::to_vec(&envelope)?;
    let event_type = envelope.event_type();
    let mut map = HeaderMap::new();
    map.insert(headers::MSG_ID, envelope.id.to_string().as_str());
    map.insert(headers::TENANT, event.tenant.as_str());
    map.insert(headers::AGGREGATE_ID, event.device_id.to_string().as_str());
    map.insert(headers::SEQUENCE, event.sequence.to_string().as_str());
    map.insert(headers::POSITION, envelope.position.as_str());
    map.insert(headers::EVENT_TYPE, event_type);
    if let Some(traceparent) = &event.traceparent {
        map.insert(headers::TRACEPARENT, traceparent.as_str());
    }
    Ok(EventMessage {
        subject: settings.subject(event.tenant.as_str(), event_type),
        headers: map,
        body,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use app::CommitPosition;
    use domain::{DecommissionReason, DeviceEvent, DeviceId, TenantId};

    fn settings() -> StreamSettings {
        StreamSettings {
            name: "DEVICE_EVENTS".into(),
            subject_prefix: "events".into(),
            duplicate_window: Duration::from_secs(120),
            max_age: Duration::from_secs(86_400),
            replicas: 1,
        }
    }

    /// The documented contract (docs/events.md): subject, headers, envelope fields.
    #[test]
    fn an_event_message_has_the_documented_subject_headers_and_envelope() {
        let event = RecordedEvent {
            device_id: DeviceId::from_uuid(uuid::Uuid::nil()),
            sequence: 3,
            tenant: TenantId::parse("acme").unwrap(),
            event: DeviceEvent::DeviceDecommissioned {
                reason: DecommissionReason::parse("lost").unwrap(),
            },
            traceparent: Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".into()),
            position: CommitPosition {
                transaction_id: 7,
                position: 9,
            },
            recorded_at: chrono::Utc::now(),
        };
        let message = message_for(&settings(), &event).unwrap();
        assert_eq!(message.subject, "events.acme.device.DeviceDecommissioned");
        let headers = &message.headers;
        let get = |name: &str| headers.get(name).map(|v| v.as_str().to_owned());
        assert_eq!(get("Nats-Msg-Id"), Some(event.event_id().to_string()));
        assert_eq!(get("Dp-Tenant").as_deref(), Some("acme"));
        assert_eq!(get("Dp-Aggregate-Id"), Some(uuid::Uuid::nil().to_string()));
        assert_eq!(get("Dp-Sequence").as_deref(), Some("3"));
        assert_eq!(get("Dp-Position"), Some(event.position.to_cursor()));
        assert_eq!(
            get("Dp-Event-Type").as_deref(),
            Some("DeviceDecommissioned")
        );
        assert!(get("traceparent").is_some());

        let body: serde_json::Value = serde_json::from_slice(&message.body).unwrap();
        let mut keys: Vec<&str> = body
            .as_object()
            .unwrap()
            .keys()
            .map(|k| k.as_str())
            .collect();
        keys.sort_unstable();
        assert_eq!(
            keys,
            [
                "data",
                "datacontenttype",
                "dataversion",
                "id",
                "position",
                "sequence",
                "source",
                "specversion",
                "subject",
                "tenant",
                "time",
                "type"
            ]
        );
        assert_eq!(body["data"], serde_json::json!({"reason": "lost"}));
        assert_eq!(body["specversion"], "1.0");
    }
}
