//! One process at a time for work that must not run twice at once (the worker's tending of
//! tenants' CAs, which makes keys in an HSM): whoever holds a session-level advisory lock on a
//! connection of its own. The lock lives and dies with that connection, so a holder that dies
//! (or loses its connection) holds nothing, and another's next `try_acquire` wins.

use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, Connection, PgConnection};

use app::StoreError;

use crate::recorded_event_row::unavailable;

/// The lock of a lease named N is keyed by the text `device-provisioning N` (the relay's,
/// `relay <relay>`, has been since before this module: never change a name's key, or a process
/// of the previous version and one of this would both hold "the" lease).
const TRY_LOCK: &str =
    "SELECT pg_try_advisory_lock(hashtextextended('device-provisioning ' || $1, 0))";

/// Candidates for one named lease.
#[derive(Clone)]
pub struct ExclusiveLeases {
    options: PgConnectOptions,
    name: String,
}

/// Proof of holding the lease, for as long as its connection lives.
pub struct ExclusiveLease {
    conn: PgConnection,
}

impl ExclusiveLeases {
    /// The lease `name` (e.g. `lease ca-stewardship`, `relay <relay>`).
    pub fn new(options: PgConnectOptions, name: impl Into<String>) -> Self {
        Self {
            options,
            name: name.into(),
        }
    }

    /// The lease, unless another process holds it (`Ok(None)`).
    pub async fn try_acquire(&self) -> Result<Option<ExclusiveLease>, StoreError> {
        let mut conn = self.options.connect().await.map_err(unavailable)?;
        let acquired: bool = sqlx::query_scalar(TRY_LOCK)
            .bind(&self.name)
            .fetch_one(&mut conn)
            .await
            .map_err(unavailable)?;
        if !acquired {
            let _ = conn.close().await;
            return Ok(None);
        }
        Ok(Some(ExclusiveLease { conn }))
    }
}

impl ExclusiveLease {
    /// The connection that holds the lease: what is read and written through it is done only
    /// while the lease is held (a holder that lost its connection learns it here).
    pub(crate) fn connection(&mut self) -> &mut PgConnection {
        &mut self.conn
    }

    /// Whether the lease is still held: its connection still answers.
    pub async fn still_held(&mut self) -> bool {
        self.conn.ping().await.is_ok()
    }

    pub async fn release(self) {
        let _ = self.conn.close().await;
    }
}
