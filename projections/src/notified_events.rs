//! Turning the messages a projector receives into the facts it folds.
//!
//! A message is a notification: it names a device and the sequence of an event. The events
//! folded are read from the event store (the named ones, and any before them the read model
//! lacks, see the runner's gap filling); a message's payload is never folded. So a forged or
//! stale message costs at most a read: it cannot put anything into a read model that the
//! event store does not hold.

use std::collections::{HashMap, HashSet};

use app::{CommitPosition, EventEnvelope, RecordedEvent};
use domain::DeviceId;
use sqlx::PgConnection;

use crate::checkpoint::furthest_position;
use crate::ProjectionError;

/// The stored events the notifications name, in commit order (so each device's in sequence
/// order), and the furthest commit position among them (`None`: none is stored). A
/// notification naming an event the store does not hold is dropped with a warning:
/// the relay publishes only committed events, so such a message was not published by it.
pub(crate) async fn notified_events(
    conn: &mut PgConnection,
    notifications: &[EventEnvelope],
) -> Result<(Vec<EventEnvelope>, Option<CommitPosition>), ProjectionError> {
    let mut ranges: HashMap<DeviceId, (u64, u64)> = HashMap::new();
    for notification in notifications {
        let range = ranges
            .entry(notification.subject)
            .or_insert((notification.sequence, notification.sequence));
        range.0 = range.0.min(notification.sequence);
        range.1 = range.1.max(notification.sequence);
    }
    let ranges: Vec<(DeviceId, u64, u64)> = ranges
        .into_iter()
        .map(|(id, (low, high))| (id, low, high))
        .collect();
    let stored = store::device_events_in_ranges(conn, &ranges).await?;
    let held: HashSet<(DeviceId, u64)> = stored.iter().map(|e| (e.device_id, e.sequence)).collect();
    let unknown = notifications
        .iter()
        .filter(|n| !held.contains(&(n.subject, n.sequence)))
        .count();
    if unknown > 0 {
        tracing::warn!(
            messages = unknown,
            "messages name events the event store does not hold; ignored"
        );
    }
    let furthest = furthest_position(&stored);
    let events = stored
        .into_iter()
        .map(RecordedEvent::into_envelope)
        .collect();
    Ok((events, furthest))
}
