//! Rebuilding a read model from the event store without downtime, for every registered
//! projection alike.
//!
//! The rebuild folds every event, in commit order, into shadow copies of the projection's
//! tables (`<table>_rebuild`, `shadow_tables.rs`) in batches (read a page of events, fold it
//! through the runner into the shadows, advance the rebuild's checkpoint, all in one
//! transaction). Meanwhile the live tables keep serving reads and the live projector keeps
//! writing them. When the shadows have caught up, they get the live tables' secondary
//! indexes and fresh statistics, and then one short transaction swaps them in:
//!
//! 1. `LOCK <live tables> IN ACCESS EXCLUSIVE MODE`: first `NOWAIT`, tried again after a
//!    short pause while a reader or the live projector is on them (a waiting lock request
//!    would make every reader queue behind it); if the tables are never free (a steady read
//!    load), waiting for the lock with a short `lock_timeout`, so readers queue for at most
//!    that long. Readers wait only milliseconds; none fails; the swap always happens.
//! 2. Every event committed since the checkpoint is folded into the shadows. Events still
//!    uncommitted reach the new tables later through the live projector, whose statements
//!    resolve the tables by name once the lock is released.
//! 3. Drop the live tables, rename the shadows and their indexes to the live names, mark the
//!    rebuild completed; commit.
//!
//! A row in a shadow is never behind the live row it replaces (the shadows hold every
//! committed event), so no reader sees a device go back in time.
//!
//! One rebuild per projection at a time (`lock.rs`). Cancel marks the row `cancelling`; the
//! runner stops after its batch. Starting again resumes from the checkpoint in
//! `projection_rebuilds` (`state.rs`). Only the shadows are written: no side effect
//! (certificates, NATS) can fire again.

mod lock;
mod long_steps;
mod runner;
mod shadow_tables;
mod state;

pub use runner::{ProjectionRebuild, RebuildError, RebuildOutcome, StartedRebuild};
pub use state::{read_status, request_cancel};
