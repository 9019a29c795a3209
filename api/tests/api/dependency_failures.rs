//! When a dependency is down or slow, clients get a prompt 503 or 504 problem, not a hang
//! and not a 500.

use std::time::{Duration, Instant};

use api::http::HttpLimits;
use app::{Append, AppendOutcome, EventStore, Loaded, StoreError};
use async_trait::async_trait;
use domain::{Device, DeviceId};
use sqlx::postgres::PgPoolOptions;
use store::PostgresEventStore;

use crate::helpers::*;

#[tokio::test]
async fn an_unreachable_database_is_a_503_with_retry_after() {
    let (url, pool) = migrated_database().await;
    let unreachable = PgPoolOptions::new()
        .acquire_timeout(Duration::from_millis(500))
        .connect_lazy("postgres://postgres@127.0.0.1:1/nowhere")
        .unwrap();
    let app = spawn_app_with_store(
        url,
        pool,
        PostgresEventStore::<Device>::new(unreachable),
        limits(),
    )
    .await;
    let started = Instant::now();

    let response = app
        .register(&new_key(), &registration(&unique_serial()))
        .await;

    assert_eq!(response.headers()["retry-after"], "1");
    assert_problem(response, 503, "service-unavailable").await;
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "bounded by the acquire timeout"
    );
}

/// A store that takes longer than any client should wait.
struct Stalled;

#[async_trait]
impl EventStore<Device> for Stalled {
    async fn load(&self, _: DeviceId) -> Result<Loaded<Device>, StoreError> {
        tokio::time::sleep(Duration::from_secs(30)).await;
        Ok(Loaded::without_events())
    }

    async fn load_at(&self, _: DeviceId, _: u64) -> Result<Loaded<Device>, StoreError> {
        tokio::time::sleep(Duration::from_secs(30)).await;
        Ok(Loaded::without_events())
    }

    async fn append(
        &self,
        appends: &[Append<'_, Device>],
    ) -> Result<Vec<AppendOutcome>, StoreError> {
        tokio::time::sleep(Duration::from_secs(30)).await;
        Ok(vec![AppendOutcome::VersionConflict; appends.len()])
    }
}

#[tokio::test]
async fn a_request_past_its_deadline_is_a_504() {
    let (url, pool) = migrated_database().await;
    let tight = HttpLimits {
        request_timeout: Duration::from_millis(300),
        ..limits()
    };
    let app = spawn_app_with_store(url, pool, Stalled, tight).await;

    let response = app
        .register(&new_key(), &registration(&unique_serial()))
        .await;

    assert_problem(response, 504, "timeout").await;
}
