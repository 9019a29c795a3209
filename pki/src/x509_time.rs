//! Times as X.509 writes them: whole seconds, UTC.

use chrono::{DateTime, Utc};

/// `at` for rcgen's validity and revocation fields; `Err` past X.509's range.
pub(crate) fn to_time(at: DateTime<Utc>) -> Result<time::OffsetDateTime, rcgen::Error> {
    time::OffsetDateTime::from_unix_timestamp(at.timestamp()).map_err(|_| rcgen::Error::Time)
}

/// What a certificate says of `at`: X.509 times have second precision.
pub(crate) fn truncate_to_seconds(at: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp(at.timestamp(), 0).expect("in range")
}
