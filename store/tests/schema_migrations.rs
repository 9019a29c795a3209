//! `api migrate`'s step: says which migrations it applied, and applies each once.

use sqlx::postgres::PgPoolOptions;

#[tokio::test]
async fn migrating_an_empty_database_applies_every_migration_and_a_second_run_none() {
    let (_, url) = testkit::create_database().await;
    let pool = PgPoolOptions::new()
        .max_connections(2)
        .connect(&url)
        .await
        .unwrap();
    let first = store::schema::migrate(&pool).await.unwrap();
    let all = store::schema::MIGRATOR.iter().count();
    assert_eq!(first.applied.len(), all, "{first:?}");
    assert_eq!(
        first.schema_version,
        store::schema::MIGRATOR.iter().map(|m| m.version).max()
    );
    let second = store::schema::migrate(&pool).await.unwrap();
    assert!(second.applied.is_empty(), "{second:?}");
    store::schema::ensure_current(&pool).await.unwrap();
}
