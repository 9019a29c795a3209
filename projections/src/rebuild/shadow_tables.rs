//! A rebuild's shadow tables: making them (`table_copies::create_copy`), giving them the live
//! tables' secondary indexes and statistics once filled, and swapping them in for the live
//! ones (the DDL of the swap transaction).

use app::StoreError;
use sqlx::PgConnection;

use super::long_steps::execute_long;
use crate::error::unavailable;
use crate::table_copies::{create_copy, execute, primary_key, TableSet};

const SHADOW: TableSet = TableSet::Shadow;

/// Whether every one of the shadows of `live` tables exists (left by an unfinished rebuild).
pub(super) async fn shadows_exist(
    conn: &mut PgConnection,
    live: &[&str],
) -> Result<bool, StoreError> {
    let shadows: Vec<String> = live.iter().map(|t| SHADOW.name_of(t)).collect();
    sqlx::query_scalar("SELECT bool_and(to_regclass(t) IS NOT NULL) FROM unnest($1::text[]) AS t")
        .bind(&shadows)
        .fetch_one(conn)
        .await
        .map_err(unavailable)
}

/// Fresh, empty shadows of `live` tables, with their primary keys; secondary indexes come
/// after the bulk load ([`prepare_for_swap`]).
pub(super) async fn create_shadows(
    conn: &mut PgConnection,
    live: &[&str],
) -> Result<(), StoreError> {
    for table in live {
        create_copy(conn, table, SHADOW).await?;
    }
    Ok(())
}

/// Gives the shadow of `live` the live table's secondary indexes (from the catalog, so they
/// cannot drift from the migrations) and fresh planner statistics.
///
/// The indexes are built `CONCURRENTLY`: a plain `CREATE INDEX` holds a transaction id for the
/// whole build, and while it does the commit-order horizon cannot pass it, so the relay and
/// the feed would publish nothing until the build ends. A concurrent build holds none (and
/// nobody else writes the shadow anyway). An interrupted concurrent build leaves an invalid
/// index behind: it is dropped and built again. Each step is a long step (`long_steps.rs`).
pub(super) async fn prepare_for_swap(
    conn: &mut PgConnection,
    live: &str,
) -> Result<(), StoreError> {
    let definitions: Vec<(String, String)> = sqlx::query_as(
        "SELECT i.indexname::text, i.indexdef FROM pg_indexes i
          WHERE i.schemaname = current_schema() AND i.tablename = $1
            AND i.indexname NOT IN (SELECT conname FROM pg_constraint WHERE contype = 'p')",
    )
    .bind(live)
    .fetch_all(&mut *conn)
    .await
    .map_err(unavailable)?;
    let shadow = SHADOW.name_of(live);
    for (name, definition) in definitions {
        // `CREATE [UNIQUE] INDEX <name> ON <schema>.<live> USING <method> (<columns>)`
        let unexpected =
            || StoreError::Corrupt(format!("unexpected index definition: {definition}").into());
        let on = definition.find(" ON ").ok_or_else(unexpected)?;
        let using = on + definition[on..].find(" USING ").ok_or_else(unexpected)?;
        let shadow_index = SHADOW.name_of(&name);
        let invalid: Option<bool> = sqlx::query_scalar(
            "SELECT NOT indisvalid FROM pg_index WHERE indexrelid = to_regclass($1)",
        )
        .bind(&shadow_index)
        .fetch_optional(&mut *conn)
        .await
        .map_err(unavailable)?;
        if invalid == Some(true) {
            execute(conn, &format!("DROP INDEX {shadow_index}")).await?;
        }
        let head = definition[..on].replacen(
            &format!("INDEX {name}"),
            &format!("INDEX CONCURRENTLY IF NOT EXISTS {shadow_index}"),
            1,
        );
        execute_long(conn, &format!("{head} ON {shadow}{}", &definition[using..])).await?;
    }
    execute_long(conn, &format!("ANALYZE {shadow}")).await?;
    Ok(())
}

/// Replaces `live` with its shadow, in the caller's (swap) transaction, which holds the live
/// table's lock: drops it, renames the shadow, its primary key and its indexes to the live
/// names.
pub(super) async fn swap_in(conn: &mut PgConnection, live: &str) -> Result<(), StoreError> {
    let shadow = SHADOW.name_of(live);
    let (key, _) = primary_key(conn, live).await?;
    let mut renames = vec![
        format!("DROP TABLE {live}"),
        format!("ALTER TABLE {shadow} RENAME TO {live}"),
        format!(
            "ALTER TABLE {live} RENAME CONSTRAINT {} TO {key}",
            SHADOW.name_of(&key)
        ),
    ];
    for index in shadow_secondary_indexes(conn, live).await? {
        let live_name = index.trim_end_matches(SHADOW.suffix());
        renames.push(format!("ALTER INDEX {index} RENAME TO {live_name}"));
    }
    for statement in renames {
        execute(conn, &statement).await?;
    }
    Ok(())
}

/// The shadow's secondary indexes (its primary key's index is renamed with the constraint).
async fn shadow_secondary_indexes(
    conn: &mut PgConnection,
    live: &str,
) -> Result<Vec<String>, StoreError> {
    sqlx::query_scalar(
        "SELECT indexname::text FROM pg_indexes
          WHERE schemaname = current_schema() AND tablename = $1
            AND indexname NOT IN (SELECT conname FROM pg_constraint WHERE contype = 'p')",
    )
    .bind(SHADOW.name_of(live))
    .fetch_all(conn)
    .await
    .map_err(unavailable)
}
