//! Operator actions on a read model are recorded like every operator action
//! (`store::OperatorAction`), with the target `projection:<name>`: the HTTP routes (through
//! `PostgresProjectionOperations`) and `api projections …` alike.

use app::StoreError;
use sqlx::PgPool;

/// Records that `actor` asked for `action` (`rebuild`, `cancel_rebuild`, `replay`,
/// `verify`) on the projection called `projection`, before it runs.
pub async fn record_operator_action(
    pool: &PgPool,
    actor: &str,
    action: &'static str,
    projection: &str,
) -> Result<(), StoreError> {
    let target = format!("projection:{projection}");
    store::OperatorAction {
        actor,
        action,
        target: &target,
    }
    .record(pool)
    .await
}
