//! The worker's consumers, each defined once: its durable name, the subjects it takes, its
//! guarantee, and how its handler is built. Everything that enumerates consumers goes through
//! this registry: the live loops (`run`), the dead-letter retrier (`handle_again`),
//! `worker replay` (`definition`) and the lag gauges (`names`).
//!
//! Adding a consumer: a handler module implementing `ConsumerHandler` (and so
//! `nats::EventHandler`), and one entry in [`worker_consumers`]. How its messages are taken,
//! acked, redelivered and dead-lettered is `nats`'s (`nats::ConsumerRunner`). A read model registered in `projections` gets its projector consumer
//! (`projector-<name>`) from here without any line of its own.

use std::sync::Arc;

use app::{EventEnvelope, ProvisioningService, PublicEvent};
use nats::{ConsumerRunner, StreamSettings};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::consumer_handler::{ConsumerHandler, HandlingError};
use crate::projector::ProjectorConsumer;
use crate::provisioner::Provisioner;

/// Takes the registrations' certificate requests.
pub const REGISTRATIONS_CONSUMER: &str = "provisioner-registrations";
/// Takes the renewals' certificate requests.
pub const RENEWALS_CONSUMER: &str = "provisioner-renewals";

/// The durable consumer that feeds the read model `projection`.
pub fn projector_consumer(projection: &str) -> String {
    format!("projector-{projection}")
}

/// What running a consumer's handler again means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Guarantee {
    /// It acts outside the read models (signs certificates). Redeliveries are safe because the
    /// domain settles each request once, but it is never run again on purpose.
    SideEffecting,
    /// It only folds events into read models: running it again (a rebuild, a replay, a dead
    /// letter's retry) changes nothing that was right and repairs what was missed.
    Replayable,
}

/// The subjects a consumer takes from the stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Subjects {
    /// Every event of one type.
    OfType(&'static str),
    /// Every event.
    All,
}

impl Subjects {
    pub fn filter(self, stream: &StreamSettings) -> String {
        match self {
            Self::OfType(event_type) => stream.subject_filter_for_type(event_type),
            Self::All => stream.all_subjects(),
        }
    }
}

/// What handlers are built from.
pub struct Services {
    pub provisioning: Arc<ProvisioningService>,
    /// Certificate requests a provisioner holds and settles at once (their reads and appends
    /// overlap, and appends made together share a transaction); the CA's own bound on
    /// parallel signatures is separate (`BlockingCa`).
    pub provisioner_in_flight: usize,
    /// Events a projector applies per transaction, at most.
    pub projector_batch: usize,
    /// How long a projector's batch may wait for more events after its first.
    pub projector_linger: std::time::Duration,
}

/// Builds a consumer's handler from the services, given the consumer's name.
type BuildHandler = Box<dyn FnOnce(&Services, &str) -> Arc<dyn ConsumerHandler> + Send>;

/// One consumer, as registered.
pub struct ConsumerDefinition {
    pub name: String,
    pub subjects: Subjects,
    pub guarantee: Guarantee,
    build: BuildHandler,
}

impl ConsumerDefinition {
    fn new(
        name: impl Into<String>,
        subjects: Subjects,
        guarantee: Guarantee,
        build: impl FnOnce(&Services, &str) -> Arc<dyn ConsumerHandler> + Send + 'static,
    ) -> Self {
        Self {
            name: name.into(),
            subjects,
            guarantee,
            build: Box::new(build),
        }
    }
}

/// The registry: every consumer of the worker, in the order they start; a projector for each
/// registered read model (`projections::projectors`).
pub fn worker_consumers(projectors: Vec<projections::Projector>) -> Vec<ConsumerDefinition> {
    let provisioner = |s: &Services, consumer: &str| -> Arc<dyn ConsumerHandler> {
        Arc::new(Provisioner::new(
            consumer,
            s.provisioning.clone(),
            s.provisioner_in_flight,
        ))
    };
    let mut consumers = vec![
        ConsumerDefinition::new(
            REGISTRATIONS_CONSUMER,
            Subjects::OfType(PublicEvent::DEVICE_REGISTERED),
            Guarantee::SideEffecting,
            provisioner,
        ),
        ConsumerDefinition::new(
            RENEWALS_CONSUMER,
            Subjects::OfType(PublicEvent::CERTIFICATE_RENEWAL_REQUESTED),
            Guarantee::SideEffecting,
            provisioner,
        ),
    ];
    consumers.extend(projectors.into_iter().map(|projector| {
        ConsumerDefinition::new(
            projector_consumer(projector.name()),
            Subjects::All,
            Guarantee::Replayable,
            move |s: &Services, _consumer: &str| -> Arc<dyn ConsumerHandler> {
                Arc::new(ProjectorConsumer::new(
                    projector,
                    s.projector_batch,
                    s.projector_linger,
                ))
            },
        )
    }));
    consumers
}

/// A consumer no registry entry defines.
#[derive(Debug, thiserror::Error)]
#[error("no consumer {name:?}; the worker's are {}", known.join(", "))]
pub struct UnknownConsumer {
    pub name: String,
    pub known: Vec<String>,
}

/// Finds `name` among `definitions`.
pub fn find<'a>(
    definitions: &'a [ConsumerDefinition],
    name: &str,
) -> Result<&'a ConsumerDefinition, UnknownConsumer> {
    definitions
        .iter()
        .find(|d| d.name == name)
        .ok_or_else(|| UnknownConsumer {
            name: name.to_owned(),
            known: definitions.iter().map(|d| d.name.clone()).collect(),
        })
}

/// Why a stored message could not be handled again.
#[derive(Debug, thiserror::Error)]
pub enum HandleAgainError {
    #[error(transparent)]
    UnknownConsumer(#[from] UnknownConsumer),
    #[error(transparent)]
    Handling(#[from] HandlingError),
}

struct RegisteredConsumer {
    name: String,
    subjects: Subjects,
    handler: Arc<dyn ConsumerHandler>,
}

/// The consumers with their handlers built, ready to run.
pub struct ConsumerRegistry {
    consumers: Vec<RegisteredConsumer>,
}

impl ConsumerRegistry {
    /// Builds every handler of `definitions` from `services`.
    pub fn build(definitions: Vec<ConsumerDefinition>, services: &Services) -> Self {
        let consumers = definitions
            .into_iter()
            .map(|definition| RegisteredConsumer {
                handler: (definition.build)(services, &definition.name),
                name: definition.name,
                subjects: definition.subjects,
            })
            .collect();
        Self { consumers }
    }

    pub fn names(&self) -> Vec<String> {
        self.consumers.iter().map(|c| c.name.clone()).collect()
    }

    /// Handles one stored message again, as consumer `name` would (a dead letter's retry).
    pub async fn handle_again(&self, name: &str, payload: &str) -> Result<(), HandleAgainError> {
        let consumer = self
            .consumers
            .iter()
            .find(|c| c.name == name)
            .ok_or_else(|| UnknownConsumer {
                name: name.to_owned(),
                known: self.names(),
            })?;
        let envelope: EventEnvelope =
            serde_json::from_str(payload).map_err(HandlingError::NotAnEnvelope)?;
        Ok(consumer.handler.handle_again(&envelope).await?)
    }

    /// Spawns every consumer's live loop on `runner` (bound to its durable consumer,
    /// prepared once, consuming; bound again whenever it fails, until `cancel`) and the lag
    /// gauges.
    pub fn run(
        &self,
        tasks: &mut JoinSet<()>,
        runner: &ConsumerRunner,
        cancel: &CancellationToken,
    ) {
        for consumer in &self.consumers {
            let filter = consumer.subjects.filter(runner.stream());
            runner.spawn(
                tasks,
                &consumer.name,
                filter,
                consumer.handler.clone(),
                cancel,
            );
        }
        runner.spawn_lag_gauges(tasks, self.names(), cancel);
    }
}
