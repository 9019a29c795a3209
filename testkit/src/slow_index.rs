//! A secondary index on `device_view` that is slow to build (its expression sleeps for every
//! row), so that a test can act while a rebuild builds its shadow's indexes.

use sqlx::PgPool;

/// Adds `device_view_slow`, whose expression takes `seconds_per_row` for every row written or
/// indexed (the function claims to be immutable so that it can be indexed: a test's lie).
pub async fn slow_device_view_index(pool: &PgPool, seconds_per_row: f64) {
    sqlx::raw_sql(&format!(
        "CREATE FUNCTION slow_key(text) RETURNS text LANGUAGE plpgsql IMMUTABLE AS $$
         BEGIN PERFORM pg_sleep({seconds_per_row}); RETURN $1; END $$;
         CREATE INDEX device_view_slow ON device_view (slow_key(serial_number));"
    ))
    .execute(pool)
    .await
    .expect("create the slow index");
}

/// Whether a session is building the shadow's copy of the slow index right now.
pub async fn slow_index_build_running(pool: &PgPool) -> bool {
    let building: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM pg_stat_activity
          WHERE datname = current_database() AND state = 'active'
            AND query ILIKE 'CREATE INDEX%device_view_slow_rebuild%'",
    )
    .fetch_one(pool)
    .await
    .expect("read pg_stat_activity");
    building > 0
}
