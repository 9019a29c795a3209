//! The durable consumers, from JetStream's side: their settings, how messages are taken
//! (`intake`: only as many as there is room for, only those of the consumer's own, each kept
//! with in-progress acks while in hand), handed to a handler as decoded events (`handling`)
//! and settled by its [`Outcome`] (`delivery`: explicit acks, redelivery with backoff up to
//! `max_deliver`, dead letters, outages held rather than counted), the live loops and lag
//! gauges (`consumer_runner`), and replaying a consumer from a point (`consumer_replay`).
//!
//! Handlers (the worker's) implement [`EventHandler`] and never see a NATS message.

mod consumer_lag;
mod consumer_loop;
mod consumer_replay;
mod consumer_runner;
mod consumer_settings;
mod delivery;
mod event_handler;
mod handling;
mod intake;

pub use consumer_replay::{replay_consumer, replay_durable_consumer, ReplayStart};
pub use consumer_runner::ConsumerRunner;
pub use consumer_settings::{durable_pull_consumer, ConsumerSettings};
pub use delivery::recording_retries;
pub use event_handler::{DeliveredEvent, EventHandler, Outcome, Pace};
