//! A tenant's certificate authorities, one aggregate: its root CA (generation 0: the trust
//! anchor its relying parties hold) and, under it, its issuing CAs (generations 1, 2, …), of
//! which one issues at any moment. Being one aggregate is what keeps "one issuer at a time",
//! "a rotation at a time" and "a revoked CA is replaced" true under concurrent commands: every
//! decision is taken against one version of the tenant's CAs.
//!
//! A CA's life: `Created` (its key and certificate are being made by the worker), `Active`,
//! `Rotating` (its successor is certified: it signs no device certificate once the successor
//! issues, and goes on answering for what it issued: CRLs, OCSP), `Retired` (nothing it issued
//! is left), or `Revoked`. Which issuing CA signs at a moment is [`TenantCas::issuer_at`]:
//! a new one issues [`HANDOVER`] after its certification, so that every provisioner, whose view
//! of the CAs is at most [`VIEW_MAX_AGE`] old, knows of it before the switch, and its first
//! CRL is published before any certificate names it (a revoked CA's replacement too: the
//! tenant's requests wait those seconds).
//!
//! Must not: hold key material (a key's reference only), read the clock (times come in with
//! commands), or know how keys and certificates are made (the worker's `pki`).

mod ca_revocation_reason;
mod ca_spec;
mod certified_ca;
mod command;
mod error;
mod event;

pub use ca_revocation_reason::CaRevocationReason;
pub use ca_spec::{CaCommonName, CaKeyCurve, CaSpec};
pub use certified_ca::{CaCertificate, CaKeyReference, CertifiedCa};
pub use command::{
    CertifyCa, CreateTenantCas, RetireCa, RevokeCa, RotationCause, StartRotation, TenantCasCommand,
};
pub use error::TenantCasError;
pub use event::TenantCasEvent;

use std::fmt;

use chrono::{DateTime, Utc};
use cqrs_es::event_sink::EventSink;
use cqrs_es::Aggregate;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::TenantId;

/// From a new issuing CA's certification to its first signature: every provisioner learns of
/// it, and its first CRL is published, meanwhile.
pub const HANDOVER: chrono::Duration = chrono::Duration::seconds(5);

/// The oldest view of a tenant's CAs a provisioner may sign by: well under [`HANDOVER`], so
/// that no CA signs after its successor took over, whatever the views' ages.
pub const VIEW_MAX_AGE: std::time::Duration = std::time::Duration::from_secs(1);

/// Namespace of the tenants' CA aggregates' ids (fixed forever).
const TENANT_CAS_NAMESPACE: Uuid = Uuid::from_u128(0x2c4b_91d7_5e3a_4f60_8b1c_d2e9_7a05_3f18);

/// The id of a tenant's CAs: `UUIDv5(namespace, tenant)`, so a tenant has one, and creating
/// it twice races for its first event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct TenantCasId(Uuid);

impl TenantCasId {
    pub fn of(tenant: &TenantId) -> Self {
        Self(Uuid::new_v5(
            &TENANT_CAS_NAMESPACE,
            tenant.as_str().as_bytes(),
        ))
    }

    pub fn from_uuid(id: Uuid) -> Self {
        Self(id)
    }

    pub fn as_uuid(&self) -> Uuid {
        self.0
    }

    /// The name the key of the CA of `generation` is made under in the key store: a function
    /// of the creating events, so a creation that crashed after making the key finds it again.
    pub fn key_name(&self, generation: CaGeneration) -> String {
        format!("ca-{}-{}", self.0.simple(), generation.0)
    }
}

impl std::str::FromStr for TenantCasId {
    type Err = uuid::Error;

    /// An id as `Display` wrote it.
    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        Uuid::parse_str(raw).map(Self)
    }
}

impl fmt::Display for TenantCasId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A CA's place among its tenant's: 0 is the root, 1.. the issuing CAs in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct CaGeneration(u32);

impl CaGeneration {
    pub const ROOT: Self = Self(0);

    pub fn new(generation: u32) -> Self {
        Self(generation)
    }

    pub fn get(self) -> u32 {
        self.0
    }

    pub fn is_root(self) -> bool {
        self == Self::ROOT
    }

    fn next(self) -> Self {
        Self(self.0 + 1)
    }
}

/// Where a CA is in its life (see the module documentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum CaState {
    Created,
    Active,
    Rotating,
    Retired,
    Revoked,
}

impl CaState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Created => "created",
            Self::Active => "active",
            Self::Rotating => "rotating",
            Self::Retired => "retired",
            Self::Revoked => "revoked",
        }
    }
}

/// One of a tenant's CAs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TenantCa {
    pub generation: CaGeneration,
    pub spec: CaSpec,
    pub state: CaState,
    /// Its key and certificate, once made.
    pub certified: Option<CertifiedCa>,
    /// When an issuing CA signs its first device certificate.
    pub issues_from: Option<DateTime<Utc>>,
    pub revoked: Option<(CaRevocationReason, DateTime<Utc>)>,
}

impl TenantCa {
    fn new(generation: CaGeneration, spec: CaSpec) -> Self {
        Self {
            generation,
            spec,
            state: CaState::Created,
            certified: None,
            issues_from: None,
            revoked: None,
        }
    }

    /// Whether it has taken over by `at` (certified, and its `issues_from` passed).
    fn took_over_by(&self, at: DateTime<Utc>) -> bool {
        self.issues_from.is_some_and(|from| from <= at)
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TenantCas {
    /// `None` until `TenantCasCreated`.
    created: Option<CreatedCas>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct CreatedCas {
    tenant: TenantId,
    root: TenantCa,
    /// In generation order: `issuing[i]` is generation `i + 1`.
    issuing: Vec<TenantCa>,
}

impl TenantCas {
    pub fn tenant(&self) -> Option<&TenantId> {
        self.created.as_ref().map(|c| &c.tenant)
    }

    pub fn root(&self) -> Option<&TenantCa> {
        self.created.as_ref().map(|c| &c.root)
    }

    /// The issuing CAs, oldest first.
    pub fn issuing(&self) -> &[TenantCa] {
        self.created.as_ref().map_or(&[], |c| &c.issuing)
    }

    /// Every CA, the root first.
    pub fn all(&self) -> impl Iterator<Item = &TenantCa> {
        self.root().into_iter().chain(self.issuing())
    }

    pub fn ca(&self, generation: CaGeneration) -> Option<&TenantCa> {
        self.created.as_ref().and_then(|c| c.ca(generation))
    }

    /// The issuing CA that signs device certificates at `at`: the newest that took over by
    /// then, if it is neither revoked nor retired nor expired. `None` while there is none (a
    /// revoked CA's replacement not yet certified): devices wait. A CA that was taken over from
    /// never signs again, even when its successor is revoked.
    pub fn issuer_at(&self, at: DateTime<Utc>) -> Option<&TenantCa> {
        let newest = self.issuing().iter().rev().find(|ca| ca.took_over_by(at))?;
        let current = matches!(newest.state, CaState::Active | CaState::Rotating)
            && newest
                .certified
                .as_ref()
                .is_some_and(|c| at < c.certificate.not_after);
        current.then_some(newest)
    }

    /// The CA whose key and certificate the worker is to make next: the root first, then the
    /// issuing CAs in order (an issuing CA's certificate needs its root's key).
    pub fn next_to_certify(&self) -> Option<&TenantCa> {
        let created = self.created.as_ref()?;
        if created.root.state == CaState::Created {
            return Some(&created.root);
        }
        created
            .issuing
            .iter()
            .find(|ca| ca.state == CaState::Created)
    }

    /// The events `command` produces in the current state, or why it is refused. An empty
    /// list means "already done".
    pub fn decide(&self, command: TenantCasCommand) -> Result<Vec<TenantCasEvent>, TenantCasError> {
        if let TenantCasCommand::Create(create) = command {
            return match self.created {
                Some(_) => Err(TenantCasError::AlreadyCreated),
                None => Ok(vec![TenantCasEvent::TenantCasCreated {
                    tenant: create.tenant,
                    root: create.root,
                    issuing: create.issuing,
                }]),
            };
        }
        let cas = match &self.created {
            Some(cas) if cas.tenant == *command.tenant() => cas,
            _ => return Err(TenantCasError::NotFound),
        };
        match command {
            TenantCasCommand::Create(_) => unreachable!("handled above"),
            TenantCasCommand::Certify(certify) => cas.certify(certify),
            TenantCasCommand::StartRotation(rotation) => {
                let current = cas
                    .issuing
                    .iter()
                    .rev()
                    .find(|ca| ca.certified.is_some())
                    .ok_or(TenantCasError::NothingToRotate)?;
                if cas.issuing.iter().any(|ca| ca.state == CaState::Created) {
                    return Err(TenantCasError::RotationInProgress);
                }
                Ok(vec![TenantCasEvent::RotationStarted {
                    generation: cas.next_generation(),
                    spec: rotation.issuing.unwrap_or_else(|| current.spec.clone()),
                    cause: rotation.cause,
                }])
            }
            TenantCasCommand::Retire(retire) => {
                let ca = cas.ca(retire.generation).ok_or(TenantCasError::UnknownCa)?;
                match ca.state {
                    _ if ca.generation.is_root() => Err(TenantCasError::StillIssuing),
                    CaState::Retired => Ok(vec![]),
                    CaState::Revoked => Err(TenantCasError::AlreadyRevoked),
                    CaState::Rotating
                        if self
                            .issuer_at(retire.at)
                            .is_some_and(|issuer| issuer.generation > ca.generation) =>
                    {
                        Ok(vec![TenantCasEvent::CaRetired {
                            generation: ca.generation,
                            retired_at: retire.at,
                        }])
                    }
                    _ => Err(TenantCasError::StillIssuing),
                }
            }
            TenantCasCommand::Revoke(revoke) => {
                let ca = cas.ca(revoke.generation).ok_or(TenantCasError::UnknownCa)?;
                if ca.generation.is_root() {
                    return Err(TenantCasError::RootNotRevocable);
                }
                match ca.state {
                    CaState::Revoked => return Err(TenantCasError::AlreadyRevoked),
                    CaState::Created => return Err(TenantCasError::NotCertified),
                    CaState::Active | CaState::Rotating | CaState::Retired => {}
                }
                let mut events = vec![TenantCasEvent::CaRevoked {
                    generation: ca.generation,
                    reason: revoke.reason,
                    revoked_at: revoke.at,
                }];
                // The tenant's devices need an issuer: unless another CA is active or being
                // made, its replacement is made now, as the revoked one was.
                let replaced = cas.issuing.iter().any(|other| {
                    other.generation != ca.generation
                        && matches!(other.state, CaState::Active | CaState::Created)
                });
                if !replaced {
                    events.push(TenantCasEvent::RotationStarted {
                        generation: cas.next_generation(),
                        spec: ca.spec.clone(),
                        cause: RotationCause::Revocation,
                    });
                }
                Ok(events)
            }
        }
    }
}

impl CreatedCas {
    fn ca(&self, generation: CaGeneration) -> Option<&TenantCa> {
        if generation.is_root() {
            return Some(&self.root);
        }
        self.issuing.get(generation.0 as usize - 1)
    }

    fn ca_mut(&mut self, generation: CaGeneration) -> Option<&mut TenantCa> {
        if generation.is_root() {
            return Some(&mut self.root);
        }
        self.issuing.get_mut(generation.0 as usize - 1)
    }

    fn next_generation(&self) -> CaGeneration {
        CaGeneration(self.issuing.len() as u32).next()
    }

    fn certify(&self, certify: CertifyCa) -> Result<Vec<TenantCasEvent>, TenantCasError> {
        let ca = self
            .ca(certify.generation)
            .ok_or(TenantCasError::UnknownCa)?;
        if let Some(certified) = &ca.certified {
            // The same certification again (a worker that crashed after appending it) changes
            // nothing; another is refused.
            return if certified.key == certify.key
                && certified.certificate.id == certify.certificate.id
            {
                Ok(vec![])
            } else {
                Err(TenantCasError::AlreadyCertified)
            };
        }
        if ca.state == CaState::Revoked {
            return Err(TenantCasError::AlreadyRevoked);
        }
        if !ca.generation.is_root() && self.root.certified.is_none() {
            return Err(TenantCasError::RootNotCertified);
        }
        if certify.certificate.not_after <= certify.at {
            return Err(TenantCasError::CertificateExpired);
        }
        // A root issues no device certificate; an issuing CA takes over after the handover.
        let issues_from = if ca.generation.is_root() {
            certify.at
        } else {
            certify.at + HANDOVER
        };
        Ok(vec![TenantCasEvent::CaCertified {
            generation: ca.generation,
            key: certify.key,
            certificate: certify.certificate,
            issues_from,
        }])
    }

    fn apply(&mut self, event: TenantCasEvent) {
        match event {
            TenantCasEvent::TenantCasCreated { .. } => {
                panic!("a tenant's CAs are created once: the event store is corrupt")
            }
            TenantCasEvent::CaCertified {
                generation,
                key,
                certificate,
                issues_from,
            } => {
                if !generation.is_root() {
                    for other in &mut self.issuing {
                        if other.state == CaState::Active {
                            other.state = CaState::Rotating;
                        }
                    }
                }
                let ca = self.ca_mut(generation).expect("a CA of this tenant");
                ca.state = CaState::Active;
                ca.certified = Some(CertifiedCa { key, certificate });
                ca.issues_from = Some(issues_from);
            }
            TenantCasEvent::RotationStarted {
                generation, spec, ..
            } => {
                self.issuing.push(TenantCa::new(generation, spec));
            }
            TenantCasEvent::CaRetired { generation, .. } => {
                self.ca_mut(generation).expect("a CA of this tenant").state = CaState::Retired;
            }
            TenantCasEvent::CaRevoked {
                generation,
                reason,
                revoked_at,
            } => {
                let ca = self.ca_mut(generation).expect("a CA of this tenant");
                ca.state = CaState::Revoked;
                ca.revoked = Some((reason, revoked_at));
            }
        }
    }
}

impl Aggregate for TenantCas {
    const TYPE: &'static str = "ca";
    type Command = TenantCasCommand;
    type Event = TenantCasEvent;
    type Error = TenantCasError;
    type Services = ();

    async fn handle(
        &mut self,
        command: Self::Command,
        _services: &Self::Services,
        sink: &EventSink<Self>,
    ) -> Result<(), Self::Error> {
        for event in self.decide(command)? {
            sink.write(event, self).await;
        }
        Ok(())
    }

    fn apply(&mut self, event: Self::Event) {
        match event {
            TenantCasEvent::TenantCasCreated {
                tenant,
                root,
                issuing,
            } => {
                self.created = Some(CreatedCas {
                    tenant,
                    root: TenantCa::new(CaGeneration::ROOT, root),
                    issuing: vec![TenantCa::new(CaGeneration(1), issuing)],
                });
            }
            other => self
                .created
                .as_mut()
                .expect("an event of a tenant's CAs that were never created")
                .apply(other),
        }
    }
}

#[cfg(test)]
mod tests;
