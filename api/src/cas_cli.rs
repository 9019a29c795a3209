//! `api cas …`: a tenant's certificate authorities from a shell, against `DATABASE_URL`, as
//! `cli:$USER`: show them, create them, start a rotation, revoke an issuing CA. The same
//! application service as `/admin/tenants/{tenant}/cas`, so the same rules and the same audit
//! trail (the CAs' events name the operator); the worker makes the keys and certificates.

use std::sync::Arc;

use app::{
    CommandMetadata, IdempotencyClaim, IdempotencyKey, IdempotencyScope, RequestFingerprint,
    RetryPolicy, TenantCaService,
};
use clap::{Args, Subcommand};
use domain::{
    CaCommonName, CaGeneration, CaKeyCurve, CaRevocationReason, CaSpec, TenantCas, TenantId,
};
use store::{PostgresEventStore, PostgresIdempotencyStore};

use crate::operator_session::OperatorSession;

#[derive(Subcommand)]
pub enum CasCommand {
    /// The tenant's CAs, one line each: generation, role, state, name, id, end.
    Show {
        #[arg(long)]
        tenant: String,
    },
    /// Create the tenant's root CA and first issuing CA.
    Create {
        #[arg(long)]
        tenant: String,
        #[arg(long)]
        root_name: String,
        #[arg(long, default_value = "P-384")]
        root_curve: String,
        #[arg(long, default_value_t = 3650)]
        root_days: u32,
        #[arg(long)]
        issuing_name: String,
        #[arg(long, default_value = "P-256")]
        issuing_curve: String,
        #[arg(long, default_value_t = 730)]
        issuing_days: u32,
        #[command(flatten)]
        key: KeyArg,
    },
    /// Start a rotation of the tenant's issuing CA (the next one is made as the current one).
    Rotate {
        #[arg(long)]
        tenant: String,
        #[command(flatten)]
        key: KeyArg,
    },
    /// Revoke one of the tenant's issuing CAs (its replacement is made at once).
    Revoke {
        #[arg(long)]
        tenant: String,
        #[arg(long)]
        generation: u32,
        /// RFC 5280's reason: cACompromise, affiliationChanged, superseded,
        /// cessationOfOperation or unspecified.
        #[arg(long, default_value = "cACompromise")]
        reason: String,
        #[command(flatten)]
        key: KeyArg,
    },
}

#[derive(Args)]
pub struct KeyArg {
    /// Makes running the command again safe: the same key answers as the first run did.
    /// By default a new one each run.
    #[arg(long)]
    idempotency_key: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum CasCliError {
    #[error("{0}")]
    Invalid(String),
    #[error("refused: {0}")]
    Refused(String),
    #[error("the tenant has no CAs of its own")]
    NotFound,
}

pub async fn run(command: CasCommand) -> Result<(), Box<dyn std::error::Error>> {
    let session = OperatorSession::open().await?;
    let device_store = PostgresEventStore::<domain::Device>::new(session.pool.clone());
    let cas = TenantCaService::new(
        Arc::new(device_store.of::<TenantCas>()),
        Arc::new(PostgresIdempotencyStore::new(session.pool.clone())),
        RetryPolicy::default(),
    );
    let result = execute(&cas, &session.actor, command).await;
    session.close().await;
    result
}

async fn execute(
    cas: &TenantCaService,
    actor: &str,
    command: CasCommand,
) -> Result<(), Box<dyn std::error::Error>> {
    let decision = match command {
        CasCommand::Show { tenant } => {
            let loaded = cas.cas_of(&tenant_id(&tenant)?).await?;
            if loaded.version == 0 {
                return Err(CasCliError::NotFound.into());
            }
            print_cas(&loaded.aggregate);
            return Ok(());
        }
        CasCommand::Create {
            tenant,
            root_name,
            root_curve,
            root_days,
            issuing_name,
            issuing_curve,
            issuing_days,
            key,
        } => {
            let tenant = tenant_id(&tenant)?;
            let root = spec(&root_name, &root_curve, root_days)?;
            let issuing = spec(&issuing_name, &issuing_curve, issuing_days)?;
            let body = format!(
                "create {root_name} {root_curve} {root_days} {issuing_name} {issuing_curve} {issuing_days}"
            );
            cas.create(
                metadata(&tenant, actor),
                claim(&tenant, "cas create", &key, &body)?,
                root,
                issuing,
            )
            .await
        }
        CasCommand::Rotate { tenant, key } => {
            let tenant = tenant_id(&tenant)?;
            cas.start_rotation(
                metadata(&tenant, actor),
                claim(&tenant, "cas rotate", &key, "rotate")?,
                None,
            )
            .await
        }
        CasCommand::Revoke {
            tenant,
            generation,
            reason,
            key,
        } => {
            let tenant = tenant_id(&tenant)?;
            let reason = CaRevocationReason::parse(&reason)
                .map_err(|e| CasCliError::Invalid(format!("--reason: {e}")))?;
            let route = format!("cas revoke {generation}");
            cas.revoke(
                metadata(&tenant, actor),
                claim(&tenant, &route, &key, reason.as_str())?,
                CaGeneration::new(generation),
                reason,
            )
            .await
        }
    };
    match decision {
        Ok(decision) => {
            if decision.replayed {
                eprintln!("(already done with this idempotency key: its outcome)");
            }
            print_cas(&decision.aggregate);
            Ok(())
        }
        Err(app::RunError::Rejected(rejection)) => {
            Err(CasCliError::Refused(rejection.to_string()).into())
        }
        Err(e) => Err(format!("{e:?}").into()),
    }
}

fn print_cas(cas: &TenantCas) {
    for ca in cas.all() {
        let certificate = ca.certified.as_ref().map(|c| &c.certificate);
        println!(
            "{}\t{}\t{}\t{}\t{}\t{}",
            ca.generation.get(),
            if ca.generation.is_root() {
                "root"
            } else {
                "issuing"
            },
            ca.state.as_str(),
            ca.spec.common_name.as_str(),
            certificate.map_or("-", |c| c.id.as_str()),
            certificate.map_or("-".to_owned(), |c| c.not_after.to_rfc3339()),
        );
    }
}

fn tenant_id(raw: &str) -> Result<TenantId, CasCliError> {
    TenantId::parse(raw).map_err(|e| CasCliError::Invalid(format!("--tenant: {e}")))
}

fn spec(name: &str, curve: &str, days: u32) -> Result<CaSpec, CasCliError> {
    let invalid = |e: domain::InvalidValue| CasCliError::Invalid(e.to_string());
    Ok(CaSpec {
        curve: CaKeyCurve::parse(curve).map_err(invalid)?,
        common_name: CaCommonName::parse(name).map_err(invalid)?,
        validity_days: CaSpec::validity_days(days).map_err(invalid)?,
    })
}

fn metadata(tenant: &TenantId, actor: &str) -> CommandMetadata {
    CommandMetadata {
        tenant: tenant.clone(),
        actor: actor.to_owned(),
        request_id: format!("cli-{}", uuid::Uuid::new_v4()),
        traceparent: None,
    }
}

fn claim(
    tenant: &TenantId,
    route: &str,
    key: &KeyArg,
    body: &str,
) -> Result<IdempotencyClaim, CasCliError> {
    let key = key
        .idempotency_key
        .clone()
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    Ok(IdempotencyClaim {
        scope: IdempotencyScope {
            tenant: tenant.clone(),
            route: format!("CLI {route}"),
            key: IdempotencyKey::parse(&key)
                .map_err(|e| CasCliError::Invalid(format!("--idempotency-key {e}")))?,
        },
        fingerprint: RequestFingerprint::of(body.as_bytes()),
    })
}
