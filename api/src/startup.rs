//! Wiring and serving: [`build`] turns the configuration into a bound [`Application`]
//! (adapters into services, services into the routers, the routers onto their sockets, the
//! background loops started), and [`Application::serve_until`] serves until a shutdown
//! signal, then drains, stops every background loop through its cancellation token and
//! closes the pools. `api serve` and every test start the api through `build`: what a test
//! changes, it changes through [`ApiConfig`], like a deployment.
//!
//! The one seam besides configuration is the event store
//! ([`build_with_event_store`]): fault injection (a store that stalls, or commits and never
//! answers) has no configuration that could produce it.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use app::{
    DeviceCommandService, DeviceEnrollmentService, DeviceQueryService, EnrollmentGroupService,
    EventStore, LongPollLimits, ProjectionOperations, RetryPolicy,
};
use axum::Router;
use projections::{
    PgReadModelChanges, PostgresCertificateStatusLookup, PostgresDeviceReadModel,
    PostgresProjectionOperations,
};
use store::PgPool;
use store::{
    GroupKeySealer, PostgresEnrollmentGroups, PostgresEventLog, PostgresEventStore,
    PostgresIdempotencyStore,
};
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::auth::{JwksUrl, JwtKeys};
use crate::cmp::CmpServer;
use crate::config::{ApiConfig, OcspSettings, TokenSettings};
use crate::device_certificates::DeviceCertificates;
use crate::est::EstServer;
use crate::http::{
    health_router, pki_router, router, AppState, BoundedListener, ConnectionLimits, HttpLimits,
    InFlightBound, InFlightLimit, TenantRateLimit,
};
use crate::scep::ScepServer;
use crate::tls::{ServerTls, TenantClientCas, TlsListener};
use pki::ocsp::{DelegatedSigner, OcspResponder, SignerLoadError};

/// The services on Postgres adapters, as `api serve` runs them; `event_store` is
/// [`PostgresEventStore`] on `pool` except where a test injects faults. Starts background
/// tasks (append notifications, the read-model listener): call it within a Tokio runtime.
///
/// With a `replica`, the query side reads it: device reads, lists, histories, the feed,
/// stats and long-polls; commands, their idempotency, EST, CRLs and OCSP stay on `pool`, the
/// primary (they need what was just written). A waiter is woken by the primary's
/// notification and re-reads the replica until it has caught up, so `min_version` stays a
/// read-your-writes guarantee under replica lag. `/readyz` checks the replica too.
fn postgres_state(
    pool: PgPool,
    replica: Option<PgPool>,
    event_store: Arc<dyn EventStore<domain::Device>>,
    ca_store: Arc<dyn EventStore<domain::TenantCas>>,
    tokens: JwtKeys,
    retry: RetryPolicy,
    long_polls: LongPollLimits,
) -> AppState {
    let idempotency = Arc::new(PostgresIdempotencyStore::new(pool.clone()));
    let commands = DeviceCommandService::new(event_store, idempotency.clone(), retry);
    let tenant_cas = app::TenantCaService::new(ca_store, idempotency, retry);
    let reads = replica.clone().unwrap_or_else(|| pool.clone());
    let queries = query_service(&pool, &reads, long_polls);
    let mut health = bootstrap::Health::new(READINESS_CHECK_TIMEOUT).with_check("postgres", {
        let pool = pool.clone();
        move || {
            let pool = pool.clone();
            async move { store::ping(&pool).await }
        }
    });
    if let Some(replica) = replica {
        health = health.with_check("postgres-replica", move || {
            let replica = replica.clone();
            async move { store::ping(&replica).await }
        });
    }
    AppState {
        commands: Arc::new(commands),
        queries: Arc::new(queries),
        auth: Arc::new(tokens),
        health,
        rate_limit: Arc::new(TenantRateLimit::off()),
        projections: Arc::new(PostgresProjectionOperations::new(pool.clone())),
        dead_letters: Arc::new(store::PostgresDeadLetters::new(pool.clone())),
        stats: Arc::new(projections::PostgresDeviceStats::new(reads.clone())),
        crls: Arc::new(app::pki::CrlDistribution::new(
            Arc::new(store::PostgresCrls::new(pool)),
            CRL_REFRESH,
        )),
        ocsp: Arc::new(OcspResponder::off()),
        tenant_cas: Arc::new(tenant_cas),
        live_certificates: Arc::new(projections::PostgresLiveCertificates::new(reads.clone())),
        enrollment_groups: None,
        est: None,
        cmp: None,
        scep: None,
        in_flight_commands: Arc::new(InFlightLimit::default_for(InFlightBound::Commands)),
        in_flight_requests: Arc::new(InFlightLimit::default_for(InFlightBound::Requests)),
        shutdown: CancellationToken::new(),
    }
}

/// The query side reading `reads` (the primary, or a read replica), woken by the primary's
/// notifications: Postgres does not replicate them.
fn query_service(
    primary: &PgPool,
    reads: &PgPool,
    long_polls: LongPollLimits,
) -> DeviceQueryService {
    DeviceQueryService::new(
        Arc::new(PostgresDeviceReadModel::new(reads.clone())),
        Arc::new(PgReadModelChanges::spawn(
            (*primary.connect_options()).clone(),
        )),
        Arc::new(PostgresEventLog::new(reads.clone())),
    )
    .with_append_signal(Arc::new(store::PgAppendedEvents::spawn(
        (*primary.connect_options()).clone(),
    )))
    .with_long_poll_limits(long_polls)
}

/// Enrollment groups on `pool`, their keys sealed with `sealer`; and EST and CMP, when the
/// fleet CA's certificate is given (`settings`), devices authenticating with certificates of
/// that CA and of tenants' CAs (`tenant_client_cas`). All are put into `state`.
fn enable_enrollment(
    state: &mut AppState,
    pool: PgPool,
    sealer: GroupKeySealer,
    settings: &crate::config::EnrollmentSettings,
    cas: Arc<dyn EventStore<domain::TenantCas>>,
    tenant_client_cas: Arc<TenantClientCas>,
) -> Result<(), EnrollmentSetupError> {
    let groups: Arc<dyn app::EnrollmentGroupStore> = Arc::new(PostgresEnrollmentGroups::new(
        pool.clone(),
        Arc::new(sealer),
    ));
    state.enrollment_groups = Some(Arc::new(EnrollmentGroupService::new(
        groups.clone(),
        Arc::new(app::random_group_key),
    )));
    let Some(ca_cert_path) = settings.ca_cert_path.as_deref() else {
        tracing::info!("EST and CMP are off (CA_CERT_PATH is not set)");
        return Ok(());
    };
    let refused = |reason: String| EnrollmentSetupError::CaCertificate {
        path: ca_cert_path.display().to_string(),
        reason,
    };
    let text = std::fs::read_to_string(ca_cert_path).map_err(|e| refused(e.to_string()))?;
    let platform = pki::CaCertificates::from_pem(&text).map_err(|e| refused(e.to_string()))?;
    let certificates = Arc::new(DeviceCertificates::new(platform, tenant_client_cas));
    let cmp_signer = settings
        .cmp_signer
        .as_ref()
        .map(|files| {
            pki::cmp::CmpSigner::from_files(&files.cert_path, &files.key_path, chrono::Utc::now())
        })
        .transpose()?;
    let enrollment = Arc::new(DeviceEnrollmentService::new(
        state.commands.clone(),
        Arc::new(PostgresDeviceReadModel::new(pool.clone())),
        cas,
        groups,
        Arc::new(PostgresCertificateStatusLookup::new(pool)),
        settings.label_less_max_groups,
    ));
    let est = EstServer::new(
        enrollment.clone(),
        certificates.clone(),
        settings.retry_after,
    )
    .map_err(|e| refused(e.to_string()))?;
    let scep_ra = settings
        .scep_ra
        .as_ref()
        .map(|ra| {
            pki::scep::ScepRa::open(&ra.cert_path, &ra.key_uri, &ra.pkcs11, chrono::Utc::now())
        })
        .transpose()?;
    match scep_ra {
        Some(ra) => {
            state.scep = Some(Arc::new(ScepServer::new(
                enrollment.clone(),
                certificates.clone(),
                Arc::new(ra),
            )));
            tracing::info!("SCEP on (/scep/<group>)");
        }
        None => tracing::info!("SCEP is off (SCEP_RA_CERT_PATH is not set)"),
    }
    if cmp_signer.is_none() {
        tracing::info!("CMP answers MAC-protected requests only (CMP_SIGNER_CERT_PATH is not set)");
    }
    state.cmp = Some(Arc::new(CmpServer::new(
        enrollment,
        certificates,
        cmp_signer,
        settings.retry_after,
    )));
    state.est = Some(Arc::new(est));
    tracing::info!("EST on (/.well-known/est/), CMP on (/.well-known/cmp/p/<group>)");
    Ok(())
}

/// EST and CMP cannot start as configured.
#[derive(Debug, thiserror::Error)]
pub enum EnrollmentSetupError {
    #[error("CA_CERT_PATH {path}: {reason}")]
    CaCertificate { path: String, reason: String },
    #[error(transparent)]
    CmpSigner(#[from] SignerLoadError),
    #[error(transparent)]
    ScepRa(#[from] pki::scep::ScepRaError),
}

/// How stale a served CRL may be: the worker publishes at most about once a second.
const CRL_REFRESH: Duration = Duration::from_secs(1);

/// Each readiness check gets this long (they run concurrently): well under a second, so that
/// an orchestrator's probe never times out before we answer.
const READINESS_CHECK_TIMEOUT: Duration = Duration::from_millis(500);

/// A listener of its own holds at most this many connections (probes and relying parties
/// open few; the bound keeps them from costing memory without end).
const OTHER_LISTENER_MAX_CONNECTIONS: usize = 256;

/// The api as [`build`] makes it: bound to its sockets, its background loops running, not
/// yet serving. Binding first lets tests ask for port 0 and learn the real addresses before
/// serving. Dropped without serving, it stops its background loops.
pub struct Application {
    listener: TcpListener,
    router: Router,
    shutdown_grace: Duration,
    connections: ConnectionLimits,
    tls: Option<Arc<ServerTls>>,
    /// The state's shutdown token (live event streams end on it), cancelled when
    /// `serve_until`'s shutdown resolves.
    streams_shutdown: CancellationToken,
    /// Listeners of their own (`API_HEALTH_ADDR`, `PKI_ADDR`), each serving part of the
    /// routes over plain HTTP; `PKI_ADDR` as bound (certificates name it).
    others: Vec<(TcpListener, Router)>,
    pki_addr: Option<SocketAddr>,
    /// Told to answer unready first, at shutdown, for `readiness_drain_delay`.
    health: bootstrap::Health,
    readiness_drain_delay: Duration,
    /// Metrics reporters, the idempotency purge, the JWKS refresh, the histogram drain: each
    /// stops when `stop_background` is cancelled (and is aborted if the application is
    /// dropped).
    background: JoinSet<()>,
    stop_background: CancellationToken,
    /// Rebuilds started here stop after their batch at shutdown.
    projections: Arc<dyn ProjectionOperations>,
    /// Closed last.
    pools: Vec<PgPool>,
}

/// The routes a listener of its own serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ListenerRole {
    /// `/livez`, `/readyz`, `/metrics`: probes and scrapes no client can crowd out.
    Health,
    /// The CRLs and the OCSP responder over plain HTTP, as relying parties fetch them, when the
    /// api's own listener speaks TLS.
    Pki,
}

/// `config` as a bound [`Application`]: refuses a schema that is behind, a TLS configuration
/// that cannot serve, an OCSP signer that is not valid, a key-encryption key that does not
/// open the stored enrollment groups, NATS credentials the server refuses, and addresses
/// already taken (each named by its variable).
pub async fn build(config: ApiConfig) -> Result<Application, Box<dyn std::error::Error>> {
    build_with_event_store(config, |store| Arc::new(store)).await
}

/// [`build`] with the event store `wrap` makes of the Postgres one: for tests that inject
/// faults into it (nothing else may differ from `api serve`).
pub async fn build_with_event_store(
    config: ApiConfig,
    wrap: impl FnOnce(PostgresEventStore<domain::Device>) -> Arc<dyn EventStore<domain::Device>>,
) -> Result<Application, Box<dyn std::error::Error>> {
    let pool = store::connect(&config.database)?;
    store::schema::ensure_current(&pool).await?;
    let (tokens, jwks_fetcher) = token_keys(&config.tokens).await?;
    let replica = match &config.read_database {
        Some(settings) => {
            let replica = store::connect(settings)?;
            store::schema::ensure_current(&replica).await?;
            tracing::info!("queries read the replica (DATABASE_READ_URL)");
            Some(replica)
        }
        None => None,
    };
    // One store, one group commit: a tenant's CA events and devices' events share it.
    let device_store = PostgresEventStore::new(pool.clone());
    let ca_store = Arc::new(device_store.of::<domain::TenantCas>());
    let mut state = postgres_state(
        pool.clone(),
        replica.clone(),
        wrap(device_store),
        ca_store.clone(),
        tokens,
        config.retry,
        config.long_polls,
    );
    // The api never publishes (the relay is in the worker), but it is not ready without NATS:
    // what it accepts would not be processed. The client reconnects by itself.
    // Credentials the server refuses stop the start (NATS_URL named).
    let (nats, nats_link) = nats::connect_checked(&nats::NatsSettings {
        url: config.nats_url.clone(),
        connect_timeout: Duration::from_secs(5),
    })
    .await?;
    let metrics = bootstrap::install_metrics_recorder()?;
    state.health = state
        .health
        .with_check("nats", {
            let nats = nats.clone();
            move || {
                let (nats, link) = (nats.clone(), nats_link.clone());
                async move { link.ping(&nats).await }
            }
        })
        .with_metrics(metrics.clone());
    state.ocsp = Arc::new(ocsp_responder(&config.ocsp, pool.clone())?);
    let tenant_cas = Arc::new(app::pki::TenantCasCache::new(
        ca_store.clone(),
        ca_store.clone(),
    ));
    let tenant_client_cas = Arc::new(TenantClientCas::default());
    match &config.enrollment.key_encryption_key {
        Some(key) => enable_enrollment(
            &mut state,
            pool.clone(),
            checked_sealer(&pool, key.expose()).await?,
            &config.enrollment,
            ca_store.clone(),
            tenant_client_cas.clone(),
        )?,
        None => tracing::info!(
            "enrollment groups and EST are off (ENROLLMENT_KEY_ENCRYPTION_KEY is not set)"
        ),
    }
    state.in_flight_commands = Arc::new(InFlightLimit::new(
        InFlightBound::Commands,
        config.command_max_in_flight,
    ));
    state.in_flight_requests = Arc::new(InFlightLimit::new(
        InFlightBound::Requests,
        config.request_max_in_flight,
    ));
    state.rate_limit = Arc::new(TenantRateLimit::new(
        config.rate_limit_per_second,
        config.rate_limit_burst,
    ));

    // Each background loop stops through `stop_background`, at its next await.
    let stop_background = CancellationToken::new();
    let mut background = JoinSet::new();
    let mut run = |task: std::pin::Pin<Box<dyn Future<Output = ()> + Send>>| {
        let stop = stop_background.clone();
        background.spawn(async move {
            stop.run_until_cancelled(task).await;
        });
    };
    run(Box::pin(bootstrap::drain_histograms(
        metrics,
        std::future::pending(),
    )));
    run(Box::pin(report_projection_status(
        state.projections.clone(),
    )));
    run(Box::pin(report_certificate_expiry(Arc::new(
        PostgresDeviceReadModel::new(pool.clone()),
    ))));
    if let Some(fetcher) = jwks_fetcher {
        run(Box::pin(fetcher.refresh_periodically(state.auth.clone())));
    }
    run(Box::pin(
        crate::tenant_ocsp_responders::refresh_tenant_responders(
            state.ocsp.clone(),
            Arc::new(store::PostgresResponderCertificates::new(pool.clone())),
            tenant_cas.clone(),
        ),
    ));
    run(Box::pin(crate::tls::refresh_tenant_client_cas(
        tenant_client_cas.clone(),
        tenant_cas,
    )));
    // The purge deletes in short batches; stopping it mid-batch rolls that batch back.
    run(Box::pin(purge_idempotency_records(
        PostgresIdempotencyStore::new(pool.clone()),
        config.idempotency_retention,
    )));

    // Read before binding: a TLS configuration that cannot serve stops the start.
    let tls = config
        .tls
        .as_ref()
        .map(|settings| ServerTls::load(settings, tenant_client_cas))
        .transpose()?;
    let listener = TcpListener::bind(config.addr)
        .await
        .map_err(|e| format!("cannot listen on {} (API_ADDR): {e}", config.addr))?;
    let scheme = if tls.is_some() { "https" } else { "http" };
    tracing::info!(addr = %listener.local_addr()?, scheme, "api listening");
    let mut app = Application {
        listener,
        router: router(state.clone(), config.limits),
        shutdown_grace: config.shutdown_grace,
        connections: config.connections,
        tls: tls.map(Arc::new),
        streams_shutdown: state.shutdown.clone(),
        others: Vec::new(),
        pki_addr: None,
        health: state.health.clone(),
        readiness_drain_delay: config.readiness_drain_delay,
        background,
        stop_background,
        projections: state.projections.clone(),
        pools: [Some(pool), replica].into_iter().flatten().collect(),
    };
    if let Some(addr) = config.health_addr {
        let bound = app
            .add_listener(ListenerRole::Health, addr, &state, config.limits)
            .await
            .map_err(|e| format!("cannot listen on {addr} (API_HEALTH_ADDR): {e}"))?;
        tracing::info!(addr = %bound, "health and metrics listening (plain HTTP)");
    }
    match config.pki_addr {
        Some(addr) => {
            let bound = app
                .add_listener(ListenerRole::Pki, addr, &state, config.limits)
                .await
                .map_err(|e| format!("cannot listen on {addr} (PKI_ADDR): {e}"))?;
            tracing::info!(addr = %bound, "CRLs and OCSP listening (plain HTTP)");
        }
        None if scheme == "https" => tracing::warn!(
            "API_ADDR speaks TLS and PKI_ADDR is not set: CRLs and OCSP are served over HTTPS \
             only, which relying parties do not fetch (RFC 5280 §4.2.1.13, RFC 5019); set \
             PKI_ADDR and point the worker's PUBLIC_BASE_URL at it"
        ),
        None => {}
    }
    Ok(app)
}

impl Application {
    /// Serves `role`'s routes on a plain-HTTP listener of its own at `addr`: its address.
    async fn add_listener(
        &mut self,
        role: ListenerRole,
        addr: SocketAddr,
        state: &AppState,
        limits: HttpLimits,
    ) -> io::Result<SocketAddr> {
        let listener = TcpListener::bind(addr).await?;
        let bound = listener.local_addr()?;
        let router = match role {
            ListenerRole::Health => health_router(state.clone(), limits),
            ListenerRole::Pki => {
                self.pki_addr = Some(bound);
                pki_router(state.clone(), limits)
            }
        };
        self.others.push((listener, router));
        Ok(bound)
    }

    /// `API_ADDR`, as bound (a port 0 made real).
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// `PKI_ADDR`, as bound, when configured.
    pub fn pki_addr(&self) -> Option<SocketAddr> {
        self.pki_addr
    }

    /// The TLS it serves, when configured (reloaded every `TLS_RELOAD_SECONDS`; a test may
    /// reload it by hand).
    pub fn tls(&self) -> Option<Arc<ServerTls>> {
        self.tls.clone()
    }

    /// Serves until `shutdown` resolves; then answers unready for the readiness drain delay
    /// (load balancers stop sending), stops accepting and gives in-flight requests up to the
    /// grace period to finish; then stops the background loops and the rebuilds started
    /// here, and closes the pools.
    pub async fn serve_until(
        mut self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> io::Result<()> {
        let header_read_timeout = self.connections.header_read_timeout;
        let grace = self.shutdown_grace;
        let stopping = CancellationToken::new();
        tokio::spawn({
            let (stopping, streams) = (stopping.clone(), self.streams_shutdown.clone());
            let (health, drain_delay) = (self.health.clone(), self.readiness_drain_delay);
            async move {
                shutdown.await;
                // Unready first, so load balancers stop sending; then stop accepting.
                health.start_draining();
                tokio::time::sleep(drain_delay).await;
                streams.cancel();
                stopping.cancel();
            }
        });
        let others: Vec<_> = std::mem::take(&mut self.others)
            .into_iter()
            .map(|(listener, router)| {
                let limits = ConnectionLimits {
                    max_connections: OTHER_LISTENER_MAX_CONNECTIONS,
                    ..self.connections
                };
                tokio::spawn(crate::http::serve(
                    BoundedListener::new(listener, limits),
                    router,
                    stopping.clone().cancelled_owned(),
                    grace,
                    header_read_timeout,
                ))
            })
            .collect();
        let listener = BoundedListener::new(self.listener, self.connections);
        let served = match self.tls {
            None => {
                crate::http::serve(
                    listener,
                    self.router,
                    stopping.clone().cancelled_owned(),
                    grace,
                    header_read_timeout,
                )
                .await
            }
            Some(tls) => {
                let listener = TlsListener::new(listener.closing_refusals(), tls.acceptor());
                tokio::select! {
                    result = crate::http::serve(listener, self.router, stopping.clone().cancelled_owned(), grace, header_read_timeout) => result,
                    () = tls.reload_periodically() => Ok(()),
                }
            }
        };
        // The other listeners stop with the api's own, whyever it stopped.
        stopping.cancel();
        for other in others {
            let _ = other.await;
        }
        self.stop_background.cancel();
        while self.background.join_next().await.is_some() {}
        // A rebuild started here stops after its batch (resumable), within the grace period.
        self.projections.stop_rebuilds(grace).await;
        for pool in &self.pools {
            store::close(pool, Duration::from_secs(5)).await;
        }
        tracing::info!("api stopped");
        served
    }
}

/// The token verifier `api serve` uses: HS256 with the secret and/or the JWKS's keys (read
/// from its file, or fetched from its URL now: then also the fetcher that keeps them fresh),
/// with `iss` and `aud` checked when configured.
pub async fn token_keys(
    settings: &TokenSettings,
) -> Result<(JwtKeys, Option<JwksUrl>), Box<dyn std::error::Error>> {
    let (jwks, fetcher) = match (&settings.jwks_path, &settings.jwks_url) {
        (Some(path), _) => {
            let jwks = std::fs::read_to_string(path)
                .map_err(|e| format!("AUTH_JWKS_PATH {}: {e}", path.display()))?;
            (Some(jwks), None)
        }
        (None, Some(url)) => {
            let fetcher = JwksUrl::new(url.clone(), settings.jwks_refresh)?;
            let jwks = fetcher
                .fetch()
                .await
                .map_err(|e| format!("AUTH_JWKS_URL: {e}"))?;
            (Some(jwks), Some(fetcher))
        }
        (None, None) => (None, None),
    };
    let keys = match (&settings.jwt_secret, jwks) {
        (Some(secret), None) => JwtKeys::from_secret(secret.expose().as_bytes()),
        (Some(secret), Some(jwks)) => JwtKeys::from_secret(secret.expose().as_bytes())
            .with_jwks(&jwks)
            .map_err(|e| format!("the JWKS: {e}"))?,
        (None, Some(jwks)) => JwtKeys::from_jwks(&jwks).map_err(|e| format!("the JWKS: {e}"))?,
        (None, None) => {
            return Err("no way to verify tokens: set AUTH_JWT_SECRET or a JWKS".into());
        }
    };
    let keys = match &settings.issuer {
        Some(issuer) => keys.with_issuer(issuer.clone()),
        None => keys,
    };
    let keys = match &settings.audience {
        Some(audience) => keys.with_audience(audience.clone()),
        None => keys,
    };
    Ok((keys, fetcher))
}

/// `api serve`: [`build`], then serve until SIGTERM/Ctrl-C.
pub async fn serve(config: ApiConfig) -> Result<(), Box<dyn std::error::Error>> {
    build(config)
        .await?
        .serve_until(bootstrap::shutdown_signal())
        .await?;
    Ok(())
}

/// The key-encryption key, refused unless it opens the stored enrollment groups (if any): a
/// wrong one would answer every EST enrollment 500.
async fn checked_sealer(
    pool: &PgPool,
    key: &str,
) -> Result<GroupKeySealer, Box<dyn std::error::Error>> {
    let sealer = GroupKeySealer::from_base64(key)?;
    store::check_key_encryption_key(pool, &sealer).await?;
    Ok(sealer)
}

/// The OCSP responder `settings` ask for, answering from the `certificate_status` read
/// model: off without a signer (and said so), else with the signer checked (see
/// [`DelegatedSigner`]: an invalid or expired one stops the api). Warns when the signer
/// expires within 7 days; `ocsp_signer_not_after_seconds` on `/metrics` says when it does.
fn ocsp_responder(settings: &OcspSettings, pool: PgPool) -> Result<OcspResponder, SignerLoadError> {
    let Some(files) = &settings.signer else {
        tracing::info!(
            "OCSP is off (OCSP_SIGNER_CERT_PATH and OCSP_SIGNER_KEY_PATH are not set): \
             every OCSP request is answered `unauthorized`"
        );
        return Ok(OcspResponder::off());
    };
    let now = chrono::Utc::now();
    let signer = DelegatedSigner::from_files(&files.cert_path, &files.key_path, now)?;
    let not_after = signer.not_after();
    metrics::gauge!("ocsp_signer_not_after_seconds").set(not_after.timestamp() as f64);
    if not_after - now < chrono::Duration::days(7) {
        tracing::warn!(
            %not_after,
            "the OCSP signer certificate expires within 7 days: issue a new one with \
             `worker ocsp-signer` and restart the api"
        );
    }
    tracing::info!(ca = %signer.ca(), %not_after, "OCSP responder on");
    let read_model: Arc<dyn app::pki::CertificateStatusLookup> =
        Arc::new(PostgresCertificateStatusLookup::new(pool));
    let statuses: Arc<dyn app::pki::CertificateStatusLookup> = if settings.status_cache.is_zero() {
        read_model
    } else {
        Arc::new(app::pki::CachedStatusLookup::new(
            read_model,
            settings.status_cache,
            OCSP_STATUS_CACHE_ENTRIES,
        ))
    };
    Ok(OcspResponder::new(signer, statuses, settings.next_update))
}

/// Certificates whose status the OCSP responder keeps at once (a few MiB).
const OCSP_STATUS_CACHE_ENTRIES: usize = 20_000;

/// Keeps the read models' status gauges (lag, stalled, rebuild progress) current for
/// `/metrics`, whichever process runs a rebuild.
async fn report_projection_status(projections: Arc<dyn app::ProjectionOperations>) {
    let mut every = tokio::time::interval(Duration::from_secs(15));
    loop {
        every.tick().await;
        if let Err(e) = projections.status().await {
            tracing::debug!(error = %e, "projection status unavailable");
        }
    }
}

/// Keeps `certificates_expiring{within}` current for `/metrics`: the certificates (all
/// tenants, not revoked) that end within 7 and within 30 days, expired ones included, so that
/// operators see the renewals coming.
async fn report_certificate_expiry(read_model: Arc<dyn app::DeviceReadModel>) {
    const WITHIN: [(&str, i64); 2] = [("7d", 7), ("30d", 30)];
    let mut every = tokio::time::interval(Duration::from_secs(60));
    loop {
        every.tick().await;
        let now = chrono::Utc::now();
        let horizons: Vec<_> = WITHIN
            .iter()
            .map(|(_, days)| now + chrono::Duration::days(*days))
            .collect();
        match read_model.certificates_expiring(&horizons).await {
            Ok(counts) => {
                for ((within, _), count) in WITHIN.iter().zip(counts) {
                    metrics::gauge!("certificates_expiring", "within" => *within).set(count as f64);
                }
            }
            Err(e) => tracing::debug!(error = %e, "certificate expiry counts unavailable"),
        }
    }
}

async fn purge_idempotency_records(store: PostgresIdempotencyStore, retention: Duration) {
    let mut every = tokio::time::interval(Duration::from_secs(600));
    loop {
        every.tick().await;
        match store.purge_expired(retention).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(deleted = n, "purged expired idempotency records"),
            Err(e) => tracing::warn!(error = %e, "idempotency record purge failed; will retry"),
        }
    }
}
