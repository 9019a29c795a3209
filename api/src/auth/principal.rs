//! The authenticated caller.

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
}

#[derive(Debug, Clone)]
pub struct Principal {
    /// The token's `sub`: recorded as the actor of the commands it sends.
    pub subject: String,
    pub tenant: TenantId,
    scopes: Vec<Scope>,
}

impl Principal {
    pub fn new(subject: String, tenant: TenantId, scope_claim: &str) -> Self {
        Self {
            subject,
            tenant,
            scopes: scope_claim
                .split_whitespace()
                .filter_map(Scope::parse)
                .collect(),
        }
    }

    pub fn has(&self, scope: Scope) -> bool {
        self.scopes.contains(&scope)
    }
}
