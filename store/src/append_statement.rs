//! The one statement that appends events, for any number of commands at once: their events
//! (one multi-row `INSERT … SELECT FROM unnest(…)`, in postgres-es's column list) and the
//! idempotency records of those that came with a claim, in one statement, so one
//! transaction: all of it commits or none of it does.
//!
//! An append is encoded (its events in their stored forms, through the aggregate's schema,
//! `stored_events`) by whoever asks for it, before it reaches the statement: the committer
//! that runs a batch (`group_commit`) only concatenates columns. A batch may mix aggregates:
//! each row names its own aggregate type.
//!
//! A sequence another writer took, or a key another command recorded, violates a primary key
//! and fails the whole statement; the violated constraint says which outcome it was. A value
//! Postgres refuses (a data error: SQLSTATE class 22, such as a U+0000 that `jsonb` and `text`
//! cannot hold; class 23 other than a unique violation; class 54, a limit exceeded) fails it
//! too. Which append of a batch caused either is not knowable from the error: `group_commit`
//! then runs each append on its own, so each gets its own outcome.
//!
//! Must not decide anything: the events were decided by the application before they came here.

use app::{Append, AppendOutcome, StoreError};
use sqlx::PgPool;

use crate::event_metadata::EventMetadata;
use crate::stored_events::EventSchema;

/// Every appended event with its command's metadata (the other columns of `events` have
/// defaults), then the idempotency records, each at the version its command's events bring
/// the aggregate to. A data-modifying `WITH` runs to completion whether or not the outer
/// statement reads it. `unnest` keeps the arrays' order, so a command's events get rising
/// positions in the order it decided them.
const INSERT_EVENTS: &str = "
WITH appended AS (
    INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata)
    SELECT e.aggregate_type, e.aggregate_id, e.sequence, e.event_type, e.event_version, e.payload::jsonb, e.metadata::jsonb
      FROM unnest($1::text[], $2::text[], $3::bigint[], $4::text[], $5::text[], $6::text[], $7::text[])
           AS e (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata)
)
INSERT INTO idempotency_keys (tenant, route, idempotency_key, request_fingerprint, aggregate_id, sequence)
SELECT * FROM unnest($8::text[], $9::text[], $10::text[], $11::text[], $12::text[], $13::bigint[])";

/// The primary key of `idempotency_keys`: a violation means another command holds the key.
/// Any other unique violation of [`INSERT_EVENTS`] is the events' primary key (`position`
/// and `transaction_id` are assigned by Postgres, never repeated).
const IDEMPOTENCY_KEYS_PRIMARY_KEY: &str = "idempotency_keys_pkey";

/// One command's append, serialised into the rows the statement writes.
#[derive(Debug)]
pub(crate) struct EncodedAppend {
    aggregate_type: &'static str,
    aggregate_id: String,
    /// The command's tenant: named in the append notification.
    tenant: String,
    expected_version: u64,
    event_types: Vec<&'static str>,
    event_versions: Vec<&'static str>,
    payloads: Vec<String>,
    /// The command's metadata, stored with each of its events.
    metadata: String,
    claim: Option<EncodedClaim>,
}

#[derive(Debug)]
struct EncodedClaim {
    tenant: String,
    route: String,
    key: String,
    fingerprint: String,
}

impl EncodedAppend {
    pub(crate) fn encode<A: EventSchema>(append: &Append<'_, A>) -> Result<Self, StoreError> {
        // The version the events bring the device to must fit the `sequence` column.
        sequence_of(
            append
                .expected_version
                .saturating_add(append.events.len() as u64),
        )?;
        let mut event_types = Vec::with_capacity(append.events.len());
        let mut event_versions = Vec::with_capacity(append.events.len());
        let mut payloads = Vec::with_capacity(append.events.len());
        for event in append.events {
            let stored = A::encode(event).map_err(|e| StoreError::Corrupt(e.into()))?;
            event_types.push(stored.event_type);
            event_versions.push(stored.event_version);
            payloads.push(stored.payload);
        }
        let metadata = serde_json::to_string(&EventMetadata::of(append.metadata, append.claim))
            .map_err(|e| StoreError::Corrupt(e.into()))?;
        Ok(Self {
            aggregate_type: A::TYPE,
            aggregate_id: append.aggregate_id.to_string(),
            tenant: append.metadata.tenant.as_str().to_owned(),
            expected_version: append.expected_version,
            event_types,
            event_versions,
            payloads,
            metadata,
            claim: append.claim.map(|c| EncodedClaim {
                tenant: c.scope.tenant.as_str().to_owned(),
                route: c.scope.route.as_str().to_owned(),
                key: c.scope.key.as_str().to_owned(),
                fingerprint: c.fingerprint.to_hex(),
            }),
        })
    }

    /// Nothing to write: such an append is answered `Appended` at its expected version,
    /// without a statement (its claim is not recorded either; see `app::Append`).
    pub(crate) fn is_empty(&self) -> bool {
        self.payloads.is_empty()
    }

    pub(crate) fn tenant(&self) -> &str {
        &self.tenant
    }

    pub(crate) fn expected_version(&self) -> u64 {
        self.expected_version
    }

    /// The aggregate's version once this append committed.
    pub(crate) fn appended_version(&self) -> u64 {
        self.expected_version + self.payloads.len() as u64
    }
}

/// Why [`insert`] wrote nothing, when it was not an outage: something about one of the
/// appends (which one, the error does not say).
#[derive(Debug)]
pub(crate) enum NotWritten {
    /// A version another writer took, or a key another command recorded: the outcome.
    Conflict(AppendOutcome),
    /// Postgres refused a value (a data error); the error, for the log.
    Refused(sqlx::Error),
}

/// Appends all of `appends` in one statement, or none of them. `Ok(Err(_))`: one of them
/// conflicted or carried a value Postgres refuses. `Err(_)`: the statement failed for
/// another reason (Postgres unreachable, the pool exhausted, a timeout): an outage, as it
/// would have been for each append alone.
pub(crate) async fn insert(
    pool: &PgPool,
    appends: &[&EncodedAppend],
) -> Result<Result<(), NotWritten>, sqlx::Error> {
    let rows: usize = appends.iter().map(|a| a.payloads.len()).sum();
    let mut aggregate_types = Vec::with_capacity(rows);
    let mut aggregate_ids = Vec::with_capacity(rows);
    let mut sequences = Vec::with_capacity(rows);
    let mut event_types: Vec<&str> = Vec::with_capacity(rows);
    let mut event_versions: Vec<&str> = Vec::with_capacity(rows);
    let mut payloads = Vec::with_capacity(rows);
    let mut metadata = Vec::with_capacity(rows);
    let mut claims = ClaimColumns::default();
    for append in appends {
        // `encode` checked that every sequence fits.
        let first = append.expected_version as i64 + 1;
        for (offset, payload) in append.payloads.iter().enumerate() {
            aggregate_types.push(append.aggregate_type);
            aggregate_ids.push(append.aggregate_id.as_str());
            sequences.push(first + offset as i64);
            payloads.push(payload.as_str());
            metadata.push(append.metadata.as_str());
        }
        event_types.extend(&append.event_types);
        event_versions.extend(&append.event_versions);
        if let Some(claim) = &append.claim {
            claims.push(
                claim,
                &append.aggregate_id,
                append.appended_version() as i64,
            );
        }
    }
    let result = sqlx::query(INSERT_EVENTS)
        .bind(aggregate_types)
        .bind(aggregate_ids)
        .bind(sequences)
        .bind(event_types)
        .bind(event_versions)
        .bind(payloads)
        .bind(metadata)
        .bind(claims.tenants)
        .bind(claims.routes)
        .bind(claims.keys)
        .bind(claims.fingerprints)
        .bind(claims.aggregate_ids)
        .bind(claims.sequences)
        .execute(pool)
        .await;
    match result {
        Ok(_) => Ok(Ok(())),
        Err(sqlx::Error::Database(db)) if db.code().as_deref() == Some("23505") => {
            Ok(Err(NotWritten::Conflict(match db.constraint() {
                Some(IDEMPOTENCY_KEYS_PRIMARY_KEY) => AppendOutcome::KeyAlreadyClaimed,
                _ => AppendOutcome::VersionConflict,
            })))
        }
        Err(e) if is_data_error(&e) => Ok(Err(NotWritten::Refused(e))),
        Err(e) => Err(e),
    }
}

/// Whether Postgres refused the statement for a value it carries, not for being unable to
/// run it: SQLSTATE class 22 (data exception, e.g. 22P05: a U+0000 in `jsonb`; 22021: a NUL
/// byte in `text`), class 23 (integrity constraint violation; a unique violation, 23505, is
/// a conflict and handled before) and class 54 (program limit exceeded, e.g. an index row
/// too large). Connection, pool, timeout and server errors are not: they are outages.
pub(crate) fn is_data_error(error: &sqlx::Error) -> bool {
    let sqlx::Error::Database(db) = error else {
        return false;
    };
    db.code().is_some_and(|code| {
        ["22", "23", "54"]
            .iter()
            .any(|class| code.starts_with(class))
    })
}

/// The SQLSTATE of a database error, for logs (never the value it refused).
pub(crate) fn sqlstate(error: &sqlx::Error) -> Option<String> {
    match error {
        sqlx::Error::Database(db) => db.code().map(|c| c.into_owned()),
        _ => None,
    }
}

#[derive(Default)]
struct ClaimColumns<'a> {
    tenants: Vec<&'a str>,
    routes: Vec<&'a str>,
    keys: Vec<&'a str>,
    fingerprints: Vec<&'a str>,
    aggregate_ids: Vec<&'a str>,
    sequences: Vec<i64>,
}

impl<'a> ClaimColumns<'a> {
    fn push(&mut self, claim: &'a EncodedClaim, aggregate_id: &'a str, version: i64) {
        self.tenants.push(&claim.tenant);
        self.routes.push(&claim.route);
        self.keys.push(&claim.key);
        self.fingerprints.push(&claim.fingerprint);
        self.aggregate_ids.push(aggregate_id);
        self.sequences.push(version);
    }
}

/// A version as the `sequence` column holds it.
fn sequence_of(version: u64) -> Result<i64, StoreError> {
    i64::try_from(version).map_err(|_| StoreError::Corrupt(VersionOutOfRange(version).into()))
}

#[derive(Debug, thiserror::Error)]
#[error("version {0} is outside the range of the events' sequence column")]
struct VersionOutOfRange(u64);
