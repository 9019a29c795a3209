//! The `TenantCas` aggregate's stored schema: every event type is written and read at
//! version 1 (`tenant_cas_forms_v1.rs`).
//!
//! | event type | written at | read |
//! |---|---|---|
//! | every tenant-CA event | 1 | 1 |

use domain::{TenantCas, TenantCasEvent};

use super::tenant_cas_forms_v1;
use super::{EventSchema, Problem, StoredEvent, StoredEventRef, UnreadableEvent};

impl EventSchema for TenantCas {
    fn encode(event: &TenantCasEvent) -> Result<StoredEvent, serde_json::Error> {
        let (event_type, payload) = tenant_cas_forms_v1::encode(event)?;
        Ok(StoredEvent {
            event_type,
            event_version: "1",
            payload,
        })
    }

    fn decode(stored: StoredEventRef<'_>) -> Result<TenantCasEvent, UnreadableEvent> {
        let decoded = match stored.event_version {
            "1" => tenant_cas_forms_v1::decode(stored.event_type, stored.payload),
            _ => None,
        };
        match decoded {
            Some(Ok(event)) => Ok(event),
            Some(Err(e)) => Err(UnreadableEvent::new(stored, Problem::NotItsForm(e))),
            None => Err(UnreadableEvent::new(stored, Problem::UnknownVersion)),
        }
    }
}
