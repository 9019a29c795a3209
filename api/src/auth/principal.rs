//! The authenticated caller: a tenant's client ([`Principal`]) or a platform operator
//! ([`Operator`]), never both. Tenants' tokens name their tenant; operators' tokens carry the
//! `platform-operator` role and no tenant, so a tenant's token cannot reach what only
//! operators may do (the `admin` routes: other tenants' dead letters, rebuilds for everyone).

use std::time::{Duration, SystemTime};

use domain::TenantId;

/// The scopes of SPEC §4. A token carries them space-separated in its `scope` claim;
/// unknown scopes are ignored (a newer issuer may grant more than this build knows).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    DevicesWrite,
    DevicesRead,
    EventsRead,
    Admin,
}

impl Scope {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::DevicesWrite => "devices:write",
            Self::DevicesRead => "devices:read",
            Self::EventsRead => "events:read",
            Self::Admin => "admin",
        }
    }

    fn parse(raw: &str) -> Option<Self> {
        [
            Self::DevicesWrite,
            Self::DevicesRead,
            Self::EventsRead,
            Self::Admin,
        ]
        .into_iter()
        .find(|s| s.as_str() == raw)
    }

    /// The known scopes of a `scope` claim.
    fn all_in(claim: &str) -> Vec<Self> {
        claim.split_whitespace().filter_map(Self::parse).collect()
    }
}

/// Who a verified token speaks for.
#[derive(Debug, Clone)]
pub enum Identity {
    Tenant(Principal),
    Operator(Operator),
}

/// A tenant's client.
#[derive(Debug, Clone)]
pub struct Principal {
    /// The token's `sub`: recorded as the actor of the commands it sends.
    pub subject: String,
    pub tenant: TenantId,
    scopes: Vec<Scope>,
    /// When the token stops being accepted: its `exp` plus the clock-skew leeway.
    token_expires: SystemTime,
}

impl Principal {
    pub fn new(
        subject: String,
        tenant: TenantId,
        scope_claim: &str,
        token_expires: SystemTime,
    ) -> Self {
        Self {
            subject,
            tenant,
            scopes: Scope::all_in(scope_claim),
            token_expires,
        }
    }

    pub fn has(&self, scope: Scope) -> bool {
        self.scopes.contains(&scope)
    }

    /// How much longer the token is accepted (zero once it is not): what a request holds
    /// open with it (a live stream, a long-poll) ends by then, as a new request with it
    /// would be refused.
    pub fn token_remaining(&self) -> Duration {
        self.token_expires
            .duration_since(SystemTime::now())
            .unwrap_or(Duration::ZERO)
    }
}

/// A platform operator: acts on the service, for no tenant.
#[derive(Debug, Clone)]
pub struct Operator {
    /// The token's `sub`: recorded as the actor of the operator actions it takes.
    pub subject: String,
    scopes: Vec<Scope>,
}

impl Operator {
    pub fn new(subject: String, scope_claim: &str) -> Self {
        Self {
            subject,
            scopes: Scope::all_in(scope_claim),
        }
    }

    pub fn has(&self, scope: Scope) -> bool {
        self.scopes.contains(&scope)
    }
}
