//! `api projections …`: the operators' read-model commands from a shell, against
//! `DATABASE_URL`: status, rebuild (with a progress bar: events done, rate, ETA), cancel,
//! replay from a point, and verify (exit status 1 when the live table differs from the events).

use std::time::Duration;

use crate::operator_session::OperatorSession;
use app::{ProjectionOperations, RebuildStatus};
use clap::Subcommand;
use indicatif::{ProgressBar, ProgressStyle};
use projections::{
    rebuild_of, replay_device_view, verify_device_view, PostgresProjectionOperations,
    ProjectionRebuild, RebuildOutcome, ReplayFrom, DEVICE_STATS, DEVICE_VIEW,
};

#[derive(Subcommand)]
pub enum ProjectionsCommand {
    /// Each read model's state, checkpoint, lag and rebuild progress.
    Status,
    /// Rebuild a read model into a shadow table and swap it in (the live one keeps serving);
    /// resumes an unfinished rebuild. Runs in this process until done.
    Rebuild {
        name: String,
        /// Events per batch.
        #[arg(long, default_value_t = 5_000)]
        batch: usize,
    },
    /// Fold again every device with an event after a point, repairing their rows in place
    /// (never moving a row back). Other read models and stream consumers are not touched.
    Replay {
        name: String,
        /// An RFC 3339 time (events recorded since) or a commit-order cursor (events after).
        #[arg(long)]
        from: ReplayFrom,
    },
    /// Ask a running rebuild (in any process) to stop after its current batch.
    Cancel { name: String },
    /// Fold every event into a scratch table and compare it row by row with the live one;
    /// prints the differences, exit status 1 if there are any.
    Verify { name: String },
}

pub async fn run(command: ProjectionsCommand) -> Result<(), Box<dyn std::error::Error>> {
    let session = OperatorSession::open().await?;
    let (pool, actor) = (session.pool.clone(), session.actor.clone());
    let operations = PostgresProjectionOperations::new(pool.clone());
    let result = match command {
        ProjectionsCommand::Status => {
            for status in operations.status().await? {
                println!("{}", serde_json::to_string_pretty(&status)?);
            }
            Ok(())
        }
        ProjectionsCommand::Rebuild { name, batch } => match rebuild_of(pool.clone(), &name) {
            Some(target) => rebuild(target.with_batch(batch), &actor).await,
            None => Err(format!(
                "no projection named {name:?}; known: {DEVICE_VIEW}, {DEVICE_STATS}"
            )
            .into()),
        },
        ProjectionsCommand::Replay { name, from } => {
            only_device_view(&name)?;
            tracing::info!(actor, action = "replay", projection = %name, "operator action");
            let report = replay_device_view(&pool, from).await?;
            println!(
                "{name}: replayed {} devices ({} events)",
                report.devices, report.events
            );
            Ok(())
        }
        ProjectionsCommand::Cancel { name } => {
            let status = operations.cancel_rebuild(&name, &actor).await?;
            println!("{}: rebuild {}", name, status.state.as_str());
            Ok(())
        }
        ProjectionsCommand::Verify { name } => {
            only_device_view(&name)?;
            let report = verify_device_view(&pool).await?;
            for difference in &report.differences {
                println!("{difference}");
            }
            println!(
                "{name}: {} devices, {} events, {} differences",
                report.devices,
                report.events,
                report.differences.len()
            );
            if report.differences.is_empty() {
                Ok(())
            } else {
                Err(format!("{name} differs from the event store").into())
            }
        }
    };
    session.close().await;
    result
}

/// Replay and verify know `device_view` only (`device_stats` is rebuilt instead).
fn only_device_view(name: &str) -> Result<(), String> {
    if name == DEVICE_VIEW {
        Ok(())
    } else {
        Err(format!(
            "{name:?}: only {DEVICE_VIEW} can be replayed or verified; rebuild other projections"
        ))
    }
}

async fn rebuild(
    rebuild: ProjectionRebuild,
    actor: &str,
) -> Result<(), Box<dyn std::error::Error>> {
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} {msg} [{bar:40}] {human_pos}/{human_len} events, {per_sec}, ETA {eta}",
        )
        .expect("a valid template")
        .progress_chars("=> "),
    );
    let name = rebuild.name();
    bar.set_message(name);
    bar.enable_steady_tick(Duration::from_millis(200));
    let show = |status: &RebuildStatus| {
        bar.set_length(status.events_total.max(status.events_done));
        bar.set_position(status.events_done);
    };
    let started = std::time::Instant::now();
    let outcome = rebuild.run(actor, show).await;
    bar.finish_and_clear();
    match outcome? {
        RebuildOutcome::Completed { events } => {
            let seconds = started.elapsed().as_secs_f64();
            println!(
                "{name}: rebuilt from {events} events in {seconds:.1} s ({:.0} events/s) and swapped in",
                events as f64 / seconds.max(1e-9)
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
