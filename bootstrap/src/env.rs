//! Configuration from environment variables, validated at start.

use std::fmt::Display;
use std::str::FromStr;
use std::time::Duration;

use store::DatabaseSettings;

use crate::feature_flags::{FeatureFlag, FeatureFlags};

/// Every problem found in the environment, one per line. Values of secret variables are
/// never included.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration:\n  - {}", .problems.join("\n  - "))]
pub struct ConfigError {
    pub problems: Vec<String>,
}

/// Reads variables through `lookup` (the process environment, or a map in tests) and
/// records what is missing or malformed instead of stopping at the first problem.
pub struct Env<F: Fn(&str) -> Option<String>> {
    lookup: F,
    problems: Vec<String>,
}

impl Env<fn(&str) -> Option<String>> {
    pub fn from_process() -> Self {
        Env::new(|name| std::env::var(name).ok())
    }
}

impl<F: Fn(&str) -> Option<String>> Env<F> {
    pub fn new(lookup: F) -> Self {
        Self {
            lookup,
            problems: Vec::new(),
        }
    }

    fn get(&self, name: &str) -> Option<String> {
        (self.lookup)(name).filter(|v| !v.trim().is_empty())
    }

    /// A variable that may be absent (an empty one is): `None` then, and no problem.
    pub fn optional(&self, name: &str) -> Option<String> {
        self.get(name)
    }

    /// A variable without default. `None` (and a recorded problem) when absent.
    pub fn required(&mut self, name: &str, what: &str) -> Option<String> {
        let value = self.get(name);
        if value.is_none() {
            self.problems.push(format!("{name} is required ({what})"));
        }
        value
    }

    /// A secret: like [`Self::required`], plus a minimum length; the value is never echoed.
    pub fn secret(&mut self, name: &str, min_len: usize) -> Option<String> {
        let value = self.required(name, "a secret")?;
        if value.len() < min_len {
            self.problems
                .push(format!("{name} must be at least {min_len} bytes long"));
            return None;
        }
        Some(value)
    }

    pub fn parse_or<T>(&mut self, name: &str, default: T) -> T
    where
        T: FromStr,
        T::Err: Display,
    {
        match self.get(name) {
            None => default,
            Some(raw) => raw.trim().parse().unwrap_or_else(|e| {
                self.problems
                    .push(format!("{name}={raw:?} is not valid: {e}"));
                default
            }),
        }
    }

    /// A whole number within `range`, e.g. a pool size.
    pub fn number_or(
        &mut self,
        name: &str,
        default: u64,
        range: std::ops::RangeInclusive<u64>,
    ) -> u64 {
        let value = self.parse_or(name, default);
        if !range.contains(&value) {
            self.problems.push(format!(
                "{name}={value} is out of range {}..={}",
                range.start(),
                range.end()
            ));
            return default;
        }
        value
    }

    pub fn millis_or(
        &mut self,
        name: &str,
        default_ms: u64,
        range: std::ops::RangeInclusive<u64>,
    ) -> Duration {
        Duration::from_millis(self.number_or(name, default_ms, range))
    }

    /// `FEATURE_FLAGS`: the flags of `known` to turn on (none by default).
    pub fn feature_flags(&mut self, known: &'static [FeatureFlag]) -> FeatureFlags {
        let raw = self.get("FEATURE_FLAGS").unwrap_or_default();
        FeatureFlags::parse(&raw, known).unwrap_or_else(|e| {
            self.problems.push(format!("FEATURE_FLAGS: {e}"));
            FeatureFlags::parse("", known).expect("no flag is always valid")
        })
    }

    pub fn problem(&mut self, message: String) {
        self.problems.push(message);
    }

    pub fn finish(self) -> Result<(), ConfigError> {
        if self.problems.is_empty() {
            Ok(())
        } else {
            Err(ConfigError {
                problems: self.problems,
            })
        }
    }
}

/// `DATABASE_URL` and the pool's limits, as every binary reads them.
pub fn database_settings<F: Fn(&str) -> Option<String>>(
    env: &mut Env<F>,
    application_name: &str,
) -> DatabaseSettings {
    let url = env
        .required("DATABASE_URL", "postgres://user@host:port/database")
        .unwrap_or_default();
    let postgres_scheme = url.starts_with("postgres://") || url.starts_with("postgresql://");
    if !url.is_empty() && !postgres_scheme {
        env.problem("DATABASE_URL must start with postgres:// or postgresql://".into());
    }
    DatabaseSettings {
        url,
        max_connections: env.number_or("DB_MAX_CONNECTIONS", 16, 1..=1000) as u32,
        acquire_timeout: env.millis_or("DB_ACQUIRE_TIMEOUT_MS", 2_000, 1..=60_000),
        statement_timeout: env.millis_or("DB_STATEMENT_TIMEOUT_MS", 5_000, 1..=600_000),
        application_name: application_name.to_owned(),
        plan_per_execution: false,
    }
}

/// `NATS_URL`, default `nats://127.0.0.1:4222`; shared with the worker. A cluster's servers
/// may be listed, comma-separated.
pub fn nats_url<F: Fn(&str) -> Option<String>>(env: &mut Env<F>) -> String {
    let url = env.parse_or("NATS_URL", "nats://127.0.0.1:4222".to_owned());
    let scheme_ok = |server: &str| {
        ["nats://", "tls://", "ws://", "wss://"]
            .iter()
            .any(|s| server.trim().starts_with(s))
    };
    if !url.split(',').all(scheme_ok) {
        env.problem(
            "NATS_URL must be one or more comma-separated URLs starting with nats://, tls://, ws:// or wss://"
                .into(),
        );
    }
    url
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(pairs: &[(&str, &str)]) -> Env<impl Fn(&str) -> Option<String>> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Env::new(move |name| map.get(name).cloned())
    }

    #[test]
    fn nats_url_may_list_a_clusters_servers() {
        let mut one = env(&[("NATS_URL", "nats://a:4222,nats://b:4222, nats://c:4222")]);
        assert_eq!(
            nats_url(&mut one),
            "nats://a:4222,nats://b:4222, nats://c:4222"
        );
        assert!(one.finish().is_ok());
        let mut bad = env(&[("NATS_URL", "nats://a:4222,http://b")]);
        nats_url(&mut bad);
        assert!(bad.finish().is_err());
    }

    #[test]
    fn reports_every_problem_at_once_without_echoing_secrets() {
        let mut env = env(&[
            ("DB_MAX_CONNECTIONS", "zero"),
            ("AUTH_JWT_SECRET", "hunter2"),
        ]);
        let _ = database_settings(&mut env, "test");
        let _ = env.secret("AUTH_JWT_SECRET", 32);
        let message = env.finish().unwrap_err().to_string();
        assert!(message.contains("DATABASE_URL is required"), "{message}");
        assert!(message.contains("DB_MAX_CONNECTIONS=\"zero\""), "{message}");
        assert!(
            message.contains("AUTH_JWT_SECRET must be at least 32 bytes"),
            "{message}"
        );
        assert!(!message.contains("hunter2"), "{message}");
    }

    #[test]
    fn defaults_apply_when_variables_are_absent() {
        let mut env = env(&[("DATABASE_URL", "postgres://postgres@127.0.0.1/x")]);
        let settings = database_settings(&mut env, "test");
        env.finish().unwrap();
        assert_eq!(settings.max_connections, 16);
        assert_eq!(settings.acquire_timeout, Duration::from_secs(2));
        assert_eq!(settings.statement_timeout, Duration::from_secs(5));
    }
}
