//! The audit trail: every operator action (who, what, on what, when), whether it comes from
//! the admin HTTP routes or an operator's command line (`api projections …`,
//! `api dead-letters …`, `worker replay`). The one statement that writes `operator_actions`.
//!
//! An action is recorded in the caller's transaction when it changes state there (a dead
//! letter's), so that the change and its record commit together; else on its own, before the
//! action runs, so that an action that fails half-way is still on record.

use sqlx::PgExecutor;
use uuid::Uuid;

use app::StoreError;

use crate::recorded_event_row::unavailable;

const RECORD_OPERATOR_ACTION: &str =
    "INSERT INTO operator_actions (id, actor, action, target) VALUES ($1, $2, $3, $4)";

/// One operator action: `actor` is who asked (the token's subject for the HTTP routes,
/// `cli:<user>` for the command lines), `action` a fixed verb
/// (`rebuild`, `replay`, `retry`, …), `target` what it acts on (`projection:device_view`,
/// `dead_letter:<id>`, `consumer:projector-device_view`).
#[derive(Debug, Clone, Copy)]
pub struct OperatorAction<'a> {
    pub actor: &'a str,
    pub action: &'static str,
    pub target: &'a str,
}

impl OperatorAction<'_> {
    /// Writes the action to `operator_actions` on `executor` (a pool, or the caller's
    /// transaction), then logs and counts it.
    pub async fn record<'e>(&self, executor: impl PgExecutor<'e>) -> Result<(), StoreError> {
        sqlx::query(RECORD_OPERATOR_ACTION)
            .bind(Uuid::now_v7())
            .bind(self.actor)
            .bind(self.action)
            .bind(self.target)
            .execute(executor)
            .await
            .map_err(unavailable)?;
        tracing::info!(
            actor = self.actor,
            action = self.action,
            target = self.target,
            "operator action"
        );
        metrics::counter!("operator_actions_total", "action" => self.action).increment(1);
        Ok(())
    }
}
