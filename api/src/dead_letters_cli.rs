//! `api dead-letters …`: list, retry and discard dead letters from a shell, against
//! `DATABASE_URL`, as `cli:$USER` (recorded in `operator_actions` like the HTTP routes).

use app::{DeadLetterFilter, DeadLetterOperations, DeadLetterState};
use clap::Subcommand;
use store::PostgresDeadLetters;
use uuid::Uuid;

use crate::operator_session::OperatorSession;

#[derive(Subcommand)]
pub enum DeadLettersCommand {
    /// Newest first, one JSON object per line.
    List {
        #[arg(long)]
        consumer: Option<String>,
        #[arg(long)]
        tenant: Option<String>,
        /// Case-insensitive part of the error.
        #[arg(long)]
        error: Option<String>,
        /// dead, retry_requested, retrying, retried or discarded.
        #[arg(long, value_parser = parse_state)]
        state: Option<DeadLetterState>,
        #[arg(long, default_value_t = 100)]
        limit: usize,
    },
    /// Have a worker process it again (once).
    Retry { id: Uuid },
    /// Never process it again.
    Discard { id: Uuid },
}

fn parse_state(raw: &str) -> Result<DeadLetterState, String> {
    DeadLetterState::parse(raw)
        .ok_or_else(|| "expected dead, retry_requested, retrying, retried or discarded".into())
}

pub async fn run(command: DeadLettersCommand) -> Result<(), Box<dyn std::error::Error>> {
    let session = OperatorSession::open().await?;
    let dead_letters = PostgresDeadLetters::new(session.pool.clone());
    let actor = &session.actor;
    let result: Result<(), Box<dyn std::error::Error>> = async {
        match command {
            DeadLettersCommand::List {
                consumer,
                tenant,
                error,
                state,
                limit,
            } => {
                let filter = DeadLetterFilter {
                    consumer,
                    tenant,
                    error,
                    state,
                    limit,
                };
                let letters = dead_letters.list(&filter).await?;
                if letters.is_empty() {
                    // On stderr: stdout stays JSON lines (none) for scripts.
                    eprintln!("no dead letters match");
                }
                for letter in letters {
                    println!("{}", serde_json::to_string(&letter)?);
                }
            }
            DeadLettersCommand::Retry { id } => {
                let letter = dead_letters.retry(id, actor).await?;
                println!("{id}: {}", letter.state.as_str());
            }
            DeadLettersCommand::Discard { id } => {
                let letter = dead_letters.discard(id, actor).await?;
                println!("{id}: {}", letter.state.as_str());
            }
        }
        Ok(())
    }
    .await;
    session.close().await;
    result
}
