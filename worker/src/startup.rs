//! Wiring the worker: adapters into services, services into consumers, and the relay; then
//! running until shutdown and draining within the grace period.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use app::{DeviceCommandService, ProvisioningService, PublicEvent, RetryPolicy};
use async_nats::jetstream;
use backon::{BackoffBuilder, ExponentialBuilder};
use nats::{durable_pull_consumer, ensure_stream, Relay};
use store::{PostgresDeadLetters, PostgresDeviceStore, PostgresIdempotencyStore, RelayLeases};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::certificate_authority::{BlockingCa, LocalCa};
use crate::config::WorkerConfig;
use crate::dead_letter_retrier::DeadLetterRetrier;
use crate::delivery::Deliveries;
use crate::projector::Projector;
use crate::provisioner::Provisioner;

/// Durable consumer names: shared by every worker process on the same stream.
pub const REGISTRATIONS_CONSUMER: &str = "provisioner-registrations";
pub const RENEWALS_CONSUMER: &str = "provisioner-renewals";
pub const DEVICE_VIEW_CONSUMER: &str = "projector-device_view";
pub const DEVICE_STATS_CONSUMER: &str = "projector-device_stats";

/// The subjects each consumer takes: the one definition, used by `run` and `worker replay`.
fn consumer_filter(name: &str, stream: &nats::StreamSettings) -> Option<String> {
    match name {
        REGISTRATIONS_CONSUMER => {
            Some(stream.subject_filter_for_type(PublicEvent::DEVICE_REGISTERED))
        }
        RENEWALS_CONSUMER => {
            Some(stream.subject_filter_for_type(PublicEvent::CERTIFICATE_RENEWAL_REQUESTED))
        }
        DEVICE_VIEW_CONSUMER | DEVICE_STATS_CONSUMER => Some(stream.all_subjects()),
        _ => None,
    }
}

/// `worker replay`: recreates one consumer to deliver again from `start`.
pub async fn replay_consumer(
    config: &WorkerConfig,
    name: &str,
    start: nats::ReplayStart,
) -> Result<Option<u64>, Box<dyn std::error::Error>> {
    let filter = consumer_filter(name, &config.stream).ok_or_else(|| {
        format!(
            "no consumer {name:?}; the worker's are {REGISTRATIONS_CONSUMER}, {RENEWALS_CONSUMER}, {DEVICE_VIEW_CONSUMER}, {DEVICE_STATS_CONSUMER}"
        )
    })?;
    let client = nats::connect(&config.nats).await?;
    let js = jetstream::new(client.clone());
    let mut stream = js
        .get_stream(&config.stream.name)
        .await
        .map_err(|e| format!("stream {}: {e}", config.stream.name))?;
    let first = nats::replay_consumer(&mut stream, name, filter, &config.consumers, start)
        .await
        .map_err(|e| e.to_string())?;
    tracing::info!(consumer = name, ?start, "operator action: consumer replay");
    let _ = client.drain().await;
    Ok(first)
}

/// The durable consumer that feeds `projector`'s read model.
pub(crate) fn projector_consumer(projector: &projections::Projector) -> String {
    format!("projector-{}", projector.name())
}

/// Fills the read model from the event store's history until that succeeds (or the worker
/// stops); does nothing when it was done before.
async fn fill_from_history(projector: &projections::Projector, cancel: &CancellationToken) {
    loop {
        match projector.fill_from_history().await {
            Ok(_) => return,
            Err(e) => {
                tracing::warn!(projection = projector.name(), error = %e, "backfill failed; retrying")
            }
        }
        tokio::select! {
            () = cancel.cancelled() => return,
            () = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
    }
}

pub async fn run(
    config: WorkerConfig,
    shutdown: impl Future<Output = ()>,
) -> Result<(), Box<dyn std::error::Error>> {
    let ca = LocalCa::from_pem_files(
        &config.ca_cert_path,
        &config.ca_key_path,
        config.certificate_validity,
    )?
    .with_profile(config.certificate_profile);
    let pool = store::connect(&config.database)?;
    store::schema::ensure_current(&pool).await?;
    let client = nats::connect(&config.nats).await?;
    let js = jetstream::new(client.clone());

    let event_store = Arc::new(PostgresDeviceStore::new(pool.clone()));
    let commands = Arc::new(DeviceCommandService::new(
        event_store.clone(),
        Arc::new(PostgresIdempotencyStore::new(pool.clone())),
        RetryPolicy::default(),
    ));
    let provisioning = Arc::new(ProvisioningService::new(
        event_store,
        commands,
        Arc::new(BlockingCa::new(ca, config.provisioner_concurrency)),
    ));
    let dead_letters = PostgresDeadLetters::new(pool.clone());

    let cancel = CancellationToken::new();
    let mut tasks = JoinSet::new();

    let health = bootstrap::Health::new(Duration::from_millis(500))
        .with_check("postgres", {
            let pool = pool.clone();
            move || {
                let pool = pool.clone();
                async move { store::ping(&pool).await }
            }
        })
        .with_check("nats", {
            let client = client.clone();
            move || {
                let client = client.clone();
                async move { nats::ping(&client).await }
            }
        })
        .with_metrics(bootstrap::install_metrics_recorder()?);
    config.features.report();
    let listener = tokio::net::TcpListener::bind(config.health_addr).await?;
    tracing::info!(addr = %listener.local_addr()?, "health and metrics endpoints listening");
    {
        let (router, cancel) = (health.router::<()>(), cancel.clone());
        tasks.spawn(async move {
            let served = axum::serve(listener, router)
                .with_graceful_shutdown(cancel.cancelled_owned())
                .await;
            if let Err(e) = served {
                tracing::error!(error = %e, "health endpoint failed");
            }
        });
    }
    if config.relay_enabled {
        let leases = RelayLeases::new(
            config.database.connect_options()?,
            format!("relay:{}", config.stream.name),
        );
        let relay = Relay::new(
            leases,
            js.clone(),
            config.stream.clone(),
            config.relay.clone(),
        );
        let cancel = cancel.clone();
        tasks.spawn(async move { relay.run(cancel.cancelled_owned()).await });
    }

    let deliveries = |name: &str| {
        Deliveries::new(
            name,
            config.consumers.clone(),
            dead_letters.clone(),
            store::DatabaseProbe::new(pool.clone()),
            cancel.clone(),
        )
    };
    for name in [REGISTRATIONS_CONSUMER, RENEWALS_CONSUMER] {
        let provisioner = Provisioner::new(
            provisioning.clone(),
            deliveries(name),
            config.provisioner_concurrency,
        );
        let filter = consumer_filter(name, &config.stream).expect("a worker consumer");
        let (js, config, cancel) = (js.clone(), config.clone(), cancel.clone());
        tasks.spawn(async move {
            keep_consuming(name, &cancel, || async {
                let consumer = async {
                    let stream = ensure_stream(&js, &config.stream).await?;
                    durable_pull_consumer(&stream, name, filter.clone(), &config.consumers).await
                };
                let Some(consumer) = unless_cancelled(&cancel, consumer).await else {
                    return Ok(());
                };
                provisioner.run(&consumer?).await
            })
            .await
        });
    }

    {
        let retrier = DeadLetterRetrier::new(
            dead_letters.clone(),
            provisioning.clone(),
            projections::projectors(&pool),
            config.dead_letter_retry_lease,
        );
        let cancel = cancel.clone();
        tasks.spawn(async move { retrier.run(&cancel).await });
    }

    for read_model in projections::projectors(&pool) {
        let name = projector_consumer(&read_model);
        let projector = Projector::new(
            read_model.clone(),
            deliveries(&name),
            config.projector_batch,
        );
        let (js, config, cancel) = (js.clone(), config.clone(), cancel.clone());
        tasks.spawn(async move {
            // A read model fills itself from the event store first (once): the stream may no
            // longer hold the oldest events.
            fill_from_history(&read_model, &cancel).await;
            let name = name.as_str();
            keep_consuming(name, &cancel, || async {
                let consumer = async {
                    let stream = ensure_stream(&js, &config.stream).await?;
                    let filter = consumer_filter(name, &config.stream).expect("a worker consumer");
                    durable_pull_consumer(&stream, name, filter, &config.consumers).await
                };
                let Some(consumer) = unless_cancelled(&cancel, consumer).await else {
                    return Ok(());
                };
                projector.run(&consumer?).await
            })
            .await
        });
    }

    {
        let (js, stream, cancel) = (js.clone(), config.stream.name.clone(), cancel.clone());
        tasks.spawn(async move {
            tokio::select! {
                () = report_consumer_lag(js, stream) => {}
                () = cancel.cancelled() => {}
            }
        });
    }

    tracing::info!(
        stream = %config.stream.name,
        relay = config.relay_enabled,
        provisioner_concurrency = config.provisioner_concurrency,
        "worker ready"
    );
    shutdown.await;
    health.start_draining();
    cancel.cancel();
    let drained = tokio::time::timeout(config.shutdown_grace, async {
        while tasks.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!("in-flight work did not finish within the grace period; unacknowledged messages will be redelivered");
        tasks.abort_all();
    }
    // Flush acks still buffered in the client.
    if tokio::time::timeout(Duration::from_secs(5), client.drain())
        .await
        .is_err()
    {
        tracing::warn!("NATS drain did not finish in time");
    }
    store::close(&pool, Duration::from_secs(5)).await;
    tracing::info!("worker stopped");
    Ok(())
}

/// Every few seconds, how far behind each durable consumer is, as gauges: messages not yet
/// delivered (`consumer_pending`) and delivered but not acknowledged (`consumer_ack_pending`).
/// For the projector, their sum is the projection's lag in events.
async fn report_consumer_lag(js: jetstream::Context, stream: String) {
    let mut every = tokio::time::interval(Duration::from_secs(5));
    loop {
        every.tick().await;
        for name in [
            REGISTRATIONS_CONSUMER,
            RENEWALS_CONSUMER,
            DEVICE_VIEW_CONSUMER,
            DEVICE_STATS_CONSUMER,
        ] {
            let info = async {
                let mut consumer: jetstream::consumer::PullConsumer =
                    js.get_consumer_from_stream(name, &stream).await?;
                Ok::<_, async_nats::Error>(consumer.info().await?.clone())
            };
            match tokio::time::timeout(Duration::from_secs(2), info).await {
                Ok(Ok(info)) => {
                    metrics::gauge!("consumer_pending", "consumer" => name)
                        .set(info.num_pending as f64);
                    metrics::gauge!("consumer_ack_pending", "consumer" => name)
                        .set(info.num_ack_pending as f64);
                }
                Ok(Err(e)) => tracing::debug!(consumer = name, error = %e, "consumer info"),
                Err(_) => tracing::debug!(consumer = name, "consumer info timed out"),
            }
        }
    }
}

/// `work`'s result, or `None` if the worker is cancelled first (for steps that hold no
/// message, such as binding to a consumer while NATS is down).
async fn unless_cancelled<T>(
    cancel: &CancellationToken,
    work: impl Future<Output = T>,
) -> Option<T> {
    tokio::select! {
        result = work => Some(result),
        () = cancel.cancelled() => None,
    }
}

/// Runs `consume` again whenever it ends with an error (NATS down, consumer deleted), with
/// backoff, until cancelled. `consume` must return soon after `cancel` fires, once the
/// messages it holds are settled.
async fn keep_consuming<F, Fut>(name: &str, cancel: &CancellationToken, mut consume: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<(), async_nats::Error>>,
{
    let mut delays = ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(100))
        .with_max_delay(Duration::from_secs(5))
        .with_jitter()
        .without_max_times()
        .build();
    while !cancel.is_cancelled() {
        // Not raced against `cancel`: a consumer stops pulling when cancelled and finishes
        // (and acks) the messages in hand; dropping it would cancel them wherever they wait.
        // The shutdown grace period bounds how long that may take.
        let result = consume().await;
        if cancel.is_cancelled() {
            return;
        }
        let delay = delays.next().unwrap_or(Duration::from_secs(5));
        match result {
            Ok(()) => tracing::info!(consumer = name, "message stream ended; resubscribing"),
            Err(e) => {
                tracing::warn!(consumer = name, error = %e, ?delay, "consumer failed; retrying")
            }
        }
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            () = cancel.cancelled() => return,
        }
    }
}
