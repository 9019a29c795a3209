//! Keeps the CA's CRL current: re-issues it when revocations changed (at most once per
//! `min_interval`, however fast revocations arrive) and before its `nextUpdate` even when
//! nothing changed. The decision and the publication are `app::pki::CrlPublication`'s; this
//! is the loop around it, bounded and stopped by the shutdown token.

use std::time::Duration;

/// When CRLs are produced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CrlSchedule {
    /// `nextUpdate − thisUpdate`; a CRL is re-issued once half of it has passed.
    pub validity: Duration,
    /// At most one CRL per this interval; also how often revocations are checked.
    pub min_interval: Duration,
}
