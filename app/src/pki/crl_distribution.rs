//! Serving the current CRL: a CRL changes at most about once per second and may be large,
//! so the api keeps the last one it read per CA in memory and asks the repository only for
//! the current number once `refresh` has passed, fetching the body only when the number moved.
//! A client holding the current ETag is answered from memory.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::{CrlRepository, IssuingCaId, PublishedCrl};
use crate::StoreError;

pub struct CrlDistribution {
    repository: Arc<dyn CrlRepository>,
    refresh: Duration,
    cached: Mutex<HashMap<IssuingCaId, Cached>>,
}

struct Cached {
    crl: Arc<PublishedCrl>,
    checked_at: Instant,
}

impl CrlDistribution {
    pub fn new(repository: Arc<dyn CrlRepository>, refresh: Duration) -> Self {
        Self {
            repository,
            refresh,
            cached: Mutex::new(HashMap::new()),
        }
    }

    /// The CA's current CRL, at most `refresh` old; `None` if it never published one.
    pub async fn current(&self, ca: &IssuingCaId) -> Result<Option<Arc<PublishedCrl>>, StoreError> {
        let known = {
            let cached = self.cached.lock().expect("crl cache lock");
            match cached.get(ca) {
                Some(c) if c.checked_at.elapsed() < self.refresh => return Ok(Some(c.crl.clone())),
                Some(c) => Some(c.crl.clone()),
                None => None,
            }
        };
        if let Some(known) = known {
            let header = self.repository.current_header(ca).await?;
            if header.map(|h| h.number) == Some(known.header.number) {
                self.remember(ca, known.clone());
                return Ok(Some(known));
            }
        }
        let Some(crl) = self.repository.current(ca).await? else {
            return Ok(None);
        };
        let crl = Arc::new(crl);
        self.remember(ca, crl.clone());
        Ok(Some(crl))
    }

    fn remember(&self, ca: &IssuingCaId, crl: Arc<PublishedCrl>) {
        let mut cached = self.cached.lock().expect("crl cache lock");
        // One entry per CA that has published: bounded by the number of CAs.
        cached.insert(
            ca.clone(),
            Cached {
                crl,
                checked_at: Instant::now(),
            },
        );
    }
}
