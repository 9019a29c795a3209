//! The registry: the one list of the read models. Everything that enumerates projections
//! derives from it (the worker's projectors, the operations' status and names, rebuild,
//! verify and replay by name), so adding a read model is its folder and one line here.

use app::UnknownProjection;
use sqlx::PgPool;

use crate::rebuild::ProjectionRebuild;
use crate::replay::{replay, ReplayFrom, ReplayReport};
use crate::runner::RunnableProjection;
use crate::verify::{verify, VerifyReport};
use crate::{ProjectionError, Projector};

/// Every read model, in registration order (the order status lists them in).
static READ_MODELS: &[&dyn RunnableProjection] = &[
    &crate::device_view::DeviceViewProjection,
    &crate::device_stats::DeviceStatsProjection,
    &crate::certificate_status::CertificateStatusProjection,
];

/// A registered read model: what operators and the worker can do with it.
#[derive(Clone, Copy)]
pub struct RegisteredProjection(&'static dyn RunnableProjection);

impl RegisteredProjection {
    pub fn name(self) -> &'static str {
        self.0.name()
    }

    /// Its live side, for the worker.
    pub fn projector(self, pool: PgPool) -> Projector {
        Projector::new(pool, self.0)
    }

    /// Its rebuild into shadow tables.
    pub fn rebuild(self, pool: PgPool) -> ProjectionRebuild {
        ProjectionRebuild::new(pool, self.0)
    }

    /// Folds every event into scratch copies of its tables and compares them with the live
    /// ones (see `verify.rs`).
    pub async fn verify(self, pool: &PgPool) -> Result<VerifyReport, ProjectionError> {
        verify(pool, self.0).await
    }

    /// Folds every device with an event after `from` again, repairing its live state in
    /// place (see `replay.rs`).
    pub async fn replay(
        self,
        pool: &PgPool,
        from: ReplayFrom,
    ) -> Result<ReplayReport, ProjectionError> {
        replay(pool, self.0, from).await
    }
}

/// Every registered read model, in registration order.
pub fn registered() -> impl Iterator<Item = RegisteredProjection> {
    READ_MODELS.iter().copied().map(RegisteredProjection)
}

/// The read model called `name`; the error lists the known names.
pub fn registered_named(name: &str) -> Result<RegisteredProjection, UnknownProjection> {
    registered()
        .find(|p| p.name() == name)
        .ok_or_else(|| UnknownProjection {
            name: name.to_owned(),
            known: registered().map(RegisteredProjection::name).collect(),
        })
}

/// Every registered read model's live side, in registration order.
pub fn projectors(pool: &PgPool) -> Vec<Projector> {
    registered().map(|p| p.projector(pool.clone())).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_an_unknown_one_lists_them() {
        let mut names: Vec<&str> = registered().map(RegisteredProjection::name).collect();
        let count = names.len();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), count, "two read models share a name");
        let unknown = registered_named("no_such_view").err().unwrap();
        let known: Vec<&str> = registered().map(RegisteredProjection::name).collect();
        assert_eq!(
            unknown.to_string(),
            format!(
                "no projection named \"no_such_view\"; known: {}",
                known.join(", ")
            )
        );
        assert!(known.len() >= 2, "{known:?}");
    }
}
