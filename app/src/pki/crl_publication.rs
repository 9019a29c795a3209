//! When a CA's CRL is (re-)issued, and how: when none exists, when revocations were recorded
//! since the current one was made, or when half of its validity has passed (so relying
//! parties always have one before its `nextUpdate`). The caller decides how often to ask
//! (the worker: at most once per interval, however many revocations arrive meanwhile, which
//! bounds the cost of signing a large list by time rather than by revocation rate).

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::{
    CrlHeader, CrlRepository, CrlSigner, CrlSigningError, PublishedCrl, RevocationListContent,
    Revocations,
};
use crate::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum CrlPublicationError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Signing(#[from] CrlSigningError),
    #[error("the CRL signing task failed")]
    SigningTask(#[source] tokio::task::JoinError),
}

/// What a call did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CrlPublished {
    /// The current CRL is up to date.
    NotDue,
    Published(CrlHeader),
    /// Another process published first; its CRL is current.
    Superseded,
}

pub struct CrlPublication {
    revocations: Arc<dyn Revocations>,
    signer: Arc<dyn CrlSigner>,
    repository: Arc<dyn CrlRepository>,
    validity: Duration,
}

impl CrlPublication {
    pub fn new(
        revocations: Arc<dyn Revocations>,
        signer: Arc<dyn CrlSigner>,
        repository: Arc<dyn CrlRepository>,
        validity: Duration,
    ) -> Self {
        Self {
            revocations,
            signer,
            repository,
            validity,
        }
    }

    /// Issues a new CRL if one is due at `now`.
    pub async fn publish_if_due(
        &self,
        now: DateTime<Utc>,
    ) -> Result<CrlPublished, CrlPublicationError> {
        let ca = self.signer.ca().clone();
        let current = self.repository.current_header(&ca).await?;
        let seen = self.revocations.count().await?;
        if !is_due(current.as_ref(), seen, now, self.validity) {
            return Ok(CrlPublished::NotDue);
        }
        let entries = self.revocations.unexpired_at(now).await?;
        let validity =
            chrono::Duration::from_std(self.validity).unwrap_or(chrono::Duration::days(1));
        // X.509 times have second precision; keep the stored header equal to the signed one.
        let this_update = DateTime::from_timestamp(now.timestamp(), 0).unwrap_or(now);
        let content = RevocationListContent {
            number: current.map_or(1, |c| c.number + 1),
            this_update,
            next_update: this_update + validity,
            entries,
        };
        let header = CrlHeader {
            number: content.number,
            this_update: content.this_update,
            next_update: content.next_update,
            revocations_seen: seen,
            entries: content.entries.len() as u64,
        };
        let signer = self.signer.clone();
        let der = tokio::task::spawn_blocking(move || signer.sign_crl(&content))
            .await
            .map_err(CrlPublicationError::SigningTask)??;
        let crl = PublishedCrl {
            ca,
            header,
            der: der.into(),
        };
        if self
            .repository
            .publish(&crl, current.map(|c| c.number))
            .await?
        {
            Ok(CrlPublished::Published(header))
        } else {
            Ok(CrlPublished::Superseded)
        }
    }
}

fn is_due(
    current: Option<&CrlHeader>,
    revocations_seen: u64,
    now: DateTime<Utc>,
    validity: Duration,
) -> bool {
    let Some(current) = current else {
        return true;
    };
    let half = chrono::Duration::from_std(validity / 2).unwrap_or(chrono::Duration::hours(12));
    revocations_seen > current.revocations_seen || now >= current.this_update + half
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(this_update: DateTime<Utc>, seen: u64) -> CrlHeader {
        CrlHeader {
            number: 7,
            this_update,
            next_update: this_update + chrono::Duration::hours(24),
            revocations_seen: seen,
            entries: seen,
        }
    }

    #[test]
    fn a_crl_is_due_when_none_exists_revocations_were_added_or_half_its_validity_passed() {
        let day = Duration::from_secs(86_400);
        let t = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        assert!(is_due(None, 0, t, day));
        assert!(!is_due(
            Some(&header(t, 3)),
            3,
            t + chrono::Duration::hours(11),
            day
        ));
        assert!(is_due(
            Some(&header(t, 3)),
            4,
            t + chrono::Duration::seconds(1),
            day
        ));
        assert!(is_due(
            Some(&header(t, 3)),
            3,
            t + chrono::Duration::hours(12),
            day
        ));
    }
}
