//! A [`CertificateStatusLookup`] that remembers each answer for a short, fixed time: relying
//! parties ask about the same certificates over and over (a broker checks a device on every
//! connection), and without it every OCSP answer cost a database read, which made the read,
//! not the signature, the responder's limit. The time bounds how stale an answer can be: a
//! revocation is answered at most `fresh_for` (plus one read) after the read model has it,
//! well inside the one second the responder promises. Bounded in entries.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use quick_cache::sync::Cache;

use super::{CertificateSerialHex, CertificateStatusLookup, CertificateStatusRecord};
use crate::StoreError;

pub struct CachedStatusLookup {
    inner: Arc<dyn CertificateStatusLookup>,
    fresh_for: Duration,
    /// Serial → what the read model said (`None`: never issued) and when it was read.
    answers: Cache<CertificateSerialHex, (Instant, Option<CertificateStatusRecord>)>,
}

impl CachedStatusLookup {
    pub fn new(
        inner: Arc<dyn CertificateStatusLookup>,
        fresh_for: Duration,
        capacity: usize,
    ) -> Self {
        Self {
            inner,
            fresh_for,
            answers: Cache::new(capacity.max(1)),
        }
    }

    fn fresh(&self, serial: &CertificateSerialHex) -> Option<Option<CertificateStatusRecord>> {
        self.answers
            .get(serial)
            .filter(|(read_at, _)| read_at.elapsed() < self.fresh_for)
            .map(|(_, record)| record)
    }
}

#[async_trait]
impl CertificateStatusLookup for CachedStatusLookup {
    async fn statuses_of(
        &self,
        serials: &[CertificateSerialHex],
    ) -> Result<Vec<CertificateStatusRecord>, StoreError> {
        let mut records = Vec::with_capacity(serials.len());
        let mut missing = Vec::new();
        for serial in serials {
            match self.fresh(serial) {
                Some(record) => records.extend(record),
                None => missing.push(serial.clone()),
            }
        }
        if missing.is_empty() {
            return Ok(records);
        }
        // Timed from before the read: an answer is never kept longer than `fresh_for` after
        // the moment it could have been true.
        let read_at = Instant::now();
        let read = self.inner.statuses_of(&missing).await?;
        for serial in missing {
            let record = read.iter().find(|r| r.serial == serial).cloned();
            self.answers.insert(serial, (read_at, record));
        }
        records.extend(read);
        Ok(records)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    /// A read model whose answers the test changes, counting its reads.
    #[derive(Default)]
    struct Statuses {
        revoked: Mutex<bool>,
        reads: Mutex<usize>,
    }

    #[async_trait]
    impl CertificateStatusLookup for Statuses {
        async fn statuses_of(
            &self,
            serials: &[CertificateSerialHex],
        ) -> Result<Vec<CertificateStatusRecord>, StoreError> {
            *self.reads.lock().unwrap() += 1;
            let revoked = *self.revoked.lock().unwrap();
            Ok(serials
                .iter()
                .filter(|s| s.as_str() == "01")
                .map(|serial| CertificateStatusRecord {
                    serial: serial.clone(),
                    device_id: domain::DeviceId::from_uuid(uuid::Uuid::nil()),
                    tenant: domain::TenantId::parse("acme").unwrap(),
                    issuer: None,
                    revocation: revoked.then(|| domain::Revocation {
                        serial: serial.as_str().to_owned(),
                        reason: domain::RevocationReason::KeyCompromise,
                        revoked_at: chrono::DateTime::from_timestamp(1_800_000_000, 0).unwrap(),
                    }),
                })
                .collect())
        }
    }

    fn serial(hex: &str) -> CertificateSerialHex {
        CertificateSerialHex::from_bytes(&hex::decode(hex).unwrap())
    }

    #[tokio::test]
    async fn answers_are_reused_while_fresh_and_read_again_after() {
        let statuses = Arc::new(Statuses::default());
        let cache = CachedStatusLookup::new(statuses.clone(), Duration::from_millis(100), 16);
        let asked = [serial("01"), serial("02")];

        let first = cache.statuses_of(&asked).await.unwrap();
        assert_eq!(first.len(), 1, "02 was never issued");
        *statuses.revoked.lock().unwrap() = true;
        let again = cache.statuses_of(&asked).await.unwrap();
        assert_eq!(
            again, first,
            "fresh answers, unknowns included, come from memory"
        );
        assert_eq!(*statuses.reads.lock().unwrap(), 1);

        tokio::time::sleep(Duration::from_millis(120)).await;
        let later = cache.statuses_of(&asked).await.unwrap();
        assert!(
            later[0].revocation.is_some(),
            "the revocation shows once the answer is stale"
        );
        assert_eq!(*statuses.reads.lock().unwrap(), 2);
    }
}
