//! `api projections …`: the operators' read-model commands from a shell, against
//! `DATABASE_URL`, as `cli:$USER`: status (one JSON object per line), rebuild (with a
//! progress bar: events done, rate, ETA), cancel, replay from a point, and verify (exit
//! status 1 when the live tables differ from the events). Every read model in the registry
//! has all of them. Each action but status is recorded in `operator_actions` before it runs
//! (target `projection:<name>`), like the admin routes' actions.

use std::time::Duration;

use app::{ProjectionOperations, RebuildStatus};
use clap::Subcommand;
use indicatif::{ProgressBar, ProgressState, ProgressStyle};
use projections::{
    record_operator_action, registered_named, PostgresProjectionOperations, ProjectionRebuild,
    RebuildOutcome, ReplayFrom,
};
use store::PgPool;

use crate::operator_session::{OperatorSession, OperatorSessionError};

#[derive(Subcommand)]
pub enum ProjectionsCommand {
    /// Each read model's state, checkpoint, lag and rebuild progress, one JSON object per
    /// line.
    Status,
    /// Rebuild a read model into shadow tables and swap them in (the live ones keep serving);
    /// resumes an unfinished rebuild. Runs in this process until done.
    Rebuild {
        name: String,
        /// Events per batch.
        #[arg(long, default_value_t = 5_000)]
        batch: usize,
    },
    /// Fold again every device with an event after a point, repairing its state in place
    /// (never moving one back). Other read models and stream consumers are not touched.
    Replay {
        name: String,
        /// An RFC 3339 time (events recorded since) or a commit-order cursor (events after).
        #[arg(long)]
        from: ReplayFrom,
    },
    /// Ask a running rebuild (in any process) to stop after its current batch.
    Cancel { name: String },
    /// Fold every event into scratch copies of the read model's tables and compare them row
    /// by row with the live ones; prints the differences, exit status 1 if there are any.
    Verify { name: String },
}

/// Why a command failed; printed by `main`, exit status 1.
#[derive(Debug, thiserror::Error)]
pub enum ProjectionsCliError {
    #[error(transparent)]
    Session(#[from] OperatorSessionError),
    #[error(transparent)]
    UnknownProjection(#[from] app::UnknownProjection),
    #[error(transparent)]
    Store(#[from] app::StoreError),
    #[error(transparent)]
    RebuildRequest(#[from] app::RebuildRequestError),
    #[error(transparent)]
    Rebuild(#[from] projections::RebuildError),
    #[error(transparent)]
    Projection(#[from] projections::ProjectionError),
    #[error("cannot print the status: {0}")]
    Output(#[from] serde_json::Error),
    #[error("{name} differs from the event store ({differences} differences)")]
    Differs {
        name: &'static str,
        differences: usize,
    },
}

pub async fn run(command: ProjectionsCommand) -> Result<(), ProjectionsCliError> {
    let session = OperatorSession::open().await?;
    let result = execute(&session.pool, &session.actor, command).await;
    session.close().await;
    result
}

async fn execute(
    pool: &PgPool,
    actor: &str,
    command: ProjectionsCommand,
) -> Result<(), ProjectionsCliError> {
    match command {
        ProjectionsCommand::Status => {
            let statuses = PostgresProjectionOperations::new(pool.clone())
                .status()
                .await?;
            if statuses.is_empty() {
                eprintln!("no projections");
            }
            for status in statuses {
                println!("{}", serde_json::to_string(&status)?);
            }
            Ok(())
        }
        ProjectionsCommand::Rebuild { name, batch } => {
            let projection = registered_named(&name)?;
            record_operator_action(pool, actor, "rebuild", projection.name()).await?;
            rebuild(projection.rebuild(pool.clone()).with_batch(batch), actor).await
        }
        ProjectionsCommand::Replay { name, from } => {
            let projection = registered_named(&name)?;
            record_operator_action(pool, actor, "replay", projection.name()).await?;
            let report = projection.replay(pool, from).await?;
            println!(
                "{}: replayed {} devices ({} events), repaired {}",
                projection.name(),
                report.devices,
                report.events,
                report.repaired
            );
            Ok(())
        }
        ProjectionsCommand::Cancel { name } => {
            // Recorded by the operation itself, as for the admin route.
            let status = PostgresProjectionOperations::new(pool.clone())
                .cancel_rebuild(&name, actor)
                .await?;
            println!("{name}: rebuild {}", status.state.as_str());
            Ok(())
        }
        ProjectionsCommand::Verify { name } => {
            let projection = registered_named(&name)?;
            record_operator_action(pool, actor, "verify", projection.name()).await?;
            let report = projection.verify(pool).await?;
            for difference in &report.differences {
                println!("{difference}");
            }
            for difference in &report.row_differences {
                println!("{difference}");
            }
            println!(
                "{}: {} devices, {} events, {} differences",
                projection.name(),
                report.devices,
                report.events,
                report.difference_count()
            );
            if report.is_clean() {
                Ok(())
            } else {
                Err(ProjectionsCliError::Differs {
                    name: projection.name(),
                    differences: report.difference_count(),
                })
            }
        }
    }
}

async fn rebuild(rebuild: ProjectionRebuild, actor: &str) -> Result<(), ProjectionsCliError> {
    let name = rebuild.name();
    let bar = ProgressBar::new_spinner();
    bar.set_style(counting_style());
    bar.set_message(name);
    bar.enable_steady_tick(Duration::from_millis(200));
    let show = |status: &RebuildStatus| {
        // A bar only once there is a total to fill: before, or with nothing to do, a bar
        // would show as full.
        if status.events_total > 0 {
            if bar.length().is_none() {
                bar.set_style(bar_style());
            }
            bar.set_length(status.events_total.max(status.events_done));
        }
        bar.set_position(status.events_done);
    };
    let started = std::time::Instant::now();
    let outcome = rebuild.run(actor, show).await;
    bar.finish_and_clear();
    match outcome? {
        RebuildOutcome::Completed { events } => {
            let seconds = started.elapsed().as_secs_f64();
            println!(
                "{name}: rebuilt from {events} events in {seconds:.1} s ({}) and swapped in",
                events_per_second(events as f64 / seconds.max(1e-9))
            );
            Ok(())
        }
        RebuildOutcome::Cancelled { events_done } => {
            println!(
                "{name}: rebuild cancelled after {events_done} events; run it again to resume"
            );
            Ok(())
        }
    }
}

/// Before the total is known: a spinner and the count.
fn counting_style() -> ProgressStyle {
    ProgressStyle::with_template("{spinner} {msg} {human_pos} events, {rate}")
        .expect("a valid template")
        .with_key("rate", rate)
}

fn bar_style() -> ProgressStyle {
    ProgressStyle::with_template(
        "{spinner} {msg} [{bar:40}] {human_pos}/{human_len} events, {rate}, ETA {eta}",
    )
    .expect("a valid template")
    .with_key("rate", rate)
    .progress_chars("=> ")
}

fn rate(state: &ProgressState, out: &mut dyn std::fmt::Write) {
    let _ = out.write_str(&events_per_second(state.per_sec()));
}

/// A rate as whole events per second.
fn events_per_second(rate: f64) -> String {
    let whole = if rate.is_finite() && rate > 0.0 {
        rate.round() as u64
    } else {
        0
    };
    format!("{whole} events/s")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_are_whole_events_per_second() {
        assert_eq!(events_per_second(100.3991), "100 events/s");
        assert_eq!(events_per_second(0.6), "1 events/s");
        assert_eq!(events_per_second(0.0), "0 events/s");
        assert_eq!(events_per_second(f64::NAN), "0 events/s");
        assert_eq!(events_per_second(f64::INFINITY), "0 events/s");
    }
}
