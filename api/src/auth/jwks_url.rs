//! A JWKS fetched from the identity provider's URL (`AUTH_JWKS_URL`): once at start (the api
//! does not start without its keys), then again every `AUTH_JWKS_REFRESH_SECONDS`, and soon
//! after a token names a key we do not hold (the provider rotated its keys), at most once per
//! `MIN_REFETCH`. Each fetch is bounded in time and size; a failed one keeps the keys we have.
//!
//! Must not: accept a token while fetching (a token naming an unknown key is refused, and
//! accepted once the new keys are in), or fetch on every such token.

use std::sync::Arc;
use std::time::Duration;

use super::{JwksError, JwtKeys};

/// A fetch, connection included, takes at most this long.
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(5);

/// The largest JWKS read.
const MAX_JWKS_BYTES: usize = 1024 * 1024;

/// Tokens naming unknown keys cause at most one fetch this often.
pub const MIN_REFETCH: Duration = Duration::from_secs(30);

pub struct JwksUrl {
    url: String,
    client: reqwest::Client,
    refresh: Duration,
}

impl JwksUrl {
    pub fn new(url: String, refresh: Duration) -> Result<Self, JwksError> {
        let client = reqwest::Client::builder()
            .timeout(FETCH_TIMEOUT)
            .connect_timeout(FETCH_TIMEOUT)
            .build()
            .map_err(|e| JwksError::Fetch(e.to_string()))?;
        Ok(Self {
            url,
            client,
            refresh,
        })
    }

    /// The JWKS document, as served now.
    pub async fn fetch(&self) -> Result<String, JwksError> {
        let fetch = async {
            let response = self
                .client
                .get(&self.url)
                .header(reqwest::header::ACCEPT, "application/json")
                .send()
                .await
                .map_err(|e| JwksError::Fetch(bootstrap::describe(&e)))?;
            if !response.status().is_success() {
                return Err(JwksError::Fetch(format!(
                    "{} answered {}",
                    self.url,
                    response.status()
                )));
            }
            if response
                .content_length()
                .is_some_and(|n| n > MAX_JWKS_BYTES as u64)
            {
                return Err(JwksError::Fetch(format!(
                    "larger than {MAX_JWKS_BYTES} bytes"
                )));
            }
            let body = response
                .bytes()
                .await
                .map_err(|e| JwksError::Fetch(bootstrap::describe(&e)))?;
            if body.len() > MAX_JWKS_BYTES {
                return Err(JwksError::Fetch(format!(
                    "larger than {MAX_JWKS_BYTES} bytes"
                )));
            }
            String::from_utf8(body.to_vec()).map_err(|_| JwksError::NotAJwks("not UTF-8".into()))
        };
        tokio::time::timeout(FETCH_TIMEOUT, fetch)
            .await
            .map_err(|_| JwksError::Fetch(format!("no answer within {FETCH_TIMEOUT:?}")))?
    }

    /// Keeps `keys` up to date with the URL, for ever (the api runs it among its background
    /// loops, which stop through their cancellation token). Failures are logged and counted (`jwks_refresh_failures_total`); the
    /// keys we have stay.
    pub async fn refresh_periodically(self, keys: Arc<JwtKeys>) {
        loop {
            tokio::select! {
                () = tokio::time::sleep(self.refresh) => {}
                () = keys.unknown_key_seen() => {}
            }
            match self.fetch().await.and_then(|jwks| keys.replace_jwks(&jwks)) {
                Ok(()) => {
                    metrics::counter!("jwks_refreshed_total").increment(1);
                    tracing::debug!(url = %self.url, "JWKS fetched");
                }
                Err(error) => {
                    metrics::counter!("jwks_refresh_failures_total").increment(1);
                    tracing::warn!(url = %self.url, %error, "JWKS not refreshed; the keys we have stay");
                }
            }
            // However many tokens name unknown keys meanwhile, the next fetch waits.
            tokio::time::sleep(MIN_REFETCH.min(self.refresh)).await;
        }
    }
}
