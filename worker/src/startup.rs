//! Wiring the worker: adapters into services, services into the consumer registry, and the
//! relay, the CRL publisher, the tenants' CA steward, the dead-letter retrier and the health
//! endpoint; then waiting for shutdown and
//! draining within the grace period. The registry (`consumer_registry`) runs the consumers.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use app::pki::{CrlPublication, ResponderCertification, TenantCasCache, TenantCrlPublication};
use app::{
    CaStewardship, DeviceCommandService, ProvisioningService, RetryPolicy, TenantCaService,
    TenantIssuers,
};
use nats::{ConsumerRunner, Relay};
use pki::{BlockingCa, CaLoadError, IssuingCa, IssuingCas, TenantCaMaker, TenantCaSettings};
use store::{
    ExclusiveLeases, PostgresDeadLetters, PostgresEventStore, PostgresIdempotencyStore, RelayLeases,
};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::ca_steward::CaSteward;
use crate::config::WorkerConfig;
use crate::consumer_registry::{worker_consumers, ConsumerRegistry, Services};
use crate::crl_publisher::CrlPublisher;
use crate::dead_letter_retrier::DeadLetterRetrier;
use crate::tenant_crl_publisher::TenantCrlPublisher;

/// How often a tenant's CAs are looked at again although their events did not change (for
/// the rules that depend on time: rotation on schedule, retirement).
const CA_RECHECK: Duration = Duration::from_secs(60);

/// Why the worker could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error("cannot load the CA")]
    Ca(#[from] CaLoadError),
    #[error(transparent)]
    Database(#[from] store::DatabaseUrlError),
    #[error(transparent)]
    Schema(#[from] store::schema::SchemaError),
    #[error(transparent)]
    Nats(#[from] nats::NatsError),
    #[error(transparent)]
    Metrics(#[from] bootstrap::MetricsRecorderError),
    #[error("cannot listen on {addr} (WORKER_HEALTH_ADDR) for health and metrics")]
    HealthEndpoint {
        addr: std::net::SocketAddr,
        #[source]
        source: std::io::Error,
    },
}

pub async fn run(
    config: WorkerConfig,
    shutdown: impl Future<Output = ()>,
) -> Result<(), StartupError> {
    let mut shutdown = std::pin::pin!(shutdown);
    let ca = Arc::new(
        IssuingCa::open(
            &config.ca_cert_path,
            &config.ca_key,
            config.certificate_validity,
        )?
        .with_profile(config.certificate_profile)
        .with_status_urls(&config.public_base_url),
    );
    ca.check_can_sign_crls()?;
    let pool = store::connect(&config.database)?;
    store::schema::ensure_current(&pool).await?;
    // Credentials the server refuses stop the start, in our words (NATS_URL named).
    let (client, nats_link) = nats::connect_checked(&config.nats).await?;

    let event_store = Arc::new(PostgresEventStore::<domain::Device>::new(pool.clone()));
    // Tenants' CA events through the same store (and group commit).
    let ca_store = Arc::new(event_store.of::<domain::TenantCas>());
    let idempotency = Arc::new(PostgresIdempotencyStore::new(pool.clone()));
    let commands = Arc::new(DeviceCommandService::new(
        event_store.clone(),
        idempotency.clone(),
        RetryPolicy::default(),
    ));
    let issuing_cas = Arc::new(IssuingCas::new(
        ca.clone(),
        config
            .ca_key_store
            .clone()
            .map(|key_store| TenantCaSettings {
                key_store,
                base: config.public_base_url.clone(),
                profile: config.certificate_profile,
                validity: config.certificate_validity,
            }),
    ));
    let services = Services {
        provisioning: Arc::new(ProvisioningService::new(
            event_store,
            commands,
            TenantIssuers::new(ca_store.clone()),
            Arc::new(BlockingCa::new(
                issuing_cas.clone(),
                config.provisioner_concurrency,
            )),
        )),
        provisioner_in_flight: config.provisioner_in_flight,
        projector_batch: config.projector_batch,
        projector_linger: config.projector_linger,
    };
    let dead_letters = PostgresDeadLetters::new(pool.clone());

    let cancel = CancellationToken::new();
    let mut tasks = JoinSet::new();

    let metrics = bootstrap::install_metrics_recorder()?;
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
                let (client, link) = (client.clone(), nats_link.clone());
                async move { link.ping(&client).await }
            }
        })
        .with_metrics(metrics.clone());
    tasks.spawn(bootstrap::drain_histograms(
        metrics,
        cancel.clone().cancelled_owned(),
    ));
    config.features.report();
    let listener = tokio::net::TcpListener::bind(config.health_addr)
        .await
        .map_err(|source| StartupError::HealthEndpoint {
            addr: config.health_addr,
            source,
        })?;
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(addr = %addr, "health and metrics endpoints listening");
    }
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
            nats::jetstream(&client),
            config.stream.clone(),
            config.relay.clone(),
        );
        let cancel = cancel.clone();
        tasks.spawn(async move { relay.run(cancel.cancelled_owned()).await });
    }

    {
        let publisher = CrlPublisher::new(
            CrlPublication::new(
                Arc::new(projections::PostgresRevocations::of_platform_ca(
                    pool.clone(),
                    ca.id().clone(),
                )),
                ca.clone(),
                Arc::new(store::PostgresCrls::new(pool.clone())),
                config.crl.validity,
            ),
            config.crl,
        );
        // The CA's first CRL before its first certificate (see `publish_first`); a shutdown
        // meanwhile ends the start.
        tokio::select! {
            _ = publisher.publish_first(&cancel) => {}
            () = &mut shutdown => {
                cancel.cancel();
                while tasks.join_next().await.is_some() {}
                return Ok(());
            }
        }
        let cancel = cancel.clone();
        tasks.spawn(async move { publisher.run(cancel).await });
    }

    match &config.ca_key_store {
        Some(key_store) => {
            let tenant_cas = Arc::new(TenantCasCache::new(ca_store.clone(), ca_store.clone()));
            let crls = TenantCrlPublisher::new(
                Arc::new(TenantCrlPublication::new(
                    tenant_cas.clone(),
                    issuing_cas.clone(),
                    Arc::new(projections::PostgresIssuedRevocations::new(pool.clone())),
                    Arc::new(store::PostgresCrls::new(pool.clone())),
                    config.crl.validity,
                )),
                Arc::new(ResponderCertification::new(
                    tenant_cas,
                    Arc::new(store::PostgresResponderCertificates::new(pool.clone())),
                    issuing_cas.clone(),
                    config.ocsp_signer_validity,
                )),
                config.crl.min_interval,
            );
            {
                let cancel = cancel.clone();
                tasks.spawn(async move { crls.run(cancel).await });
            }
            let stewardship = CaStewardship::new(
                ca_store.clone(),
                Arc::new(TenantCaService::new(
                    ca_store.clone(),
                    idempotency.clone(),
                    RetryPolicy::default(),
                )),
                Arc::new(TenantCaMaker::new(
                    key_store.clone(),
                    config.public_base_url.clone(),
                )),
                config.ca_rotation_lead,
                CA_RECHECK,
            );
            let steward = CaSteward::new(
                Arc::new(stewardship),
                ExclusiveLeases::new(config.database.connect_options()?, "lease ca-stewardship"),
                config.ca_steward_interval,
            );
            let cancel = cancel.clone();
            tasks.spawn(async move { steward.run(cancel).await });
        }
        None => tracing::info!(
            "CA_KEY_STORE is not set: this worker makes no tenant CAs, and tenants with CAs of \
             their own wait for a worker that does"
        ),
    }

    let consumers = Arc::new(ConsumerRegistry::build(
        worker_consumers(projections::projectors(&pool)),
        &services,
    ));
    let runner = ConsumerRunner::new(
        client.clone(),
        config.stream.clone(),
        config.consumers.clone(),
        dead_letters.clone(),
        store::DatabaseProbe::new(pool.clone()),
    );
    consumers.run(&mut tasks, &runner, &cancel);
    {
        let retrier = DeadLetterRetrier::new(
            dead_letters.clone(),
            consumers.clone(),
            config.dead_letter_retry_lease,
        );
        let cancel = cancel.clone();
        tasks.spawn(async move { retrier.run(&cancel).await });
    }

    tracing::info!(
        stream = %config.stream.name,
        relay = config.relay_enabled,
        consumers = %consumers.names().join(","),
        provisioner_concurrency = config.provisioner_concurrency,
        provisioner_in_flight = config.provisioner_in_flight,
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
    if !nats::drain(&client, Duration::from_secs(5)).await {
        tracing::warn!("NATS drain did not finish in time");
    }
    store::close(&pool, Duration::from_secs(5)).await;
    tracing::info!("worker stopped");
    Ok(())
}
