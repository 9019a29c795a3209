//! Enrollment groups, as operators manage them: a group belongs to a tenant, gives the devices
//! that enroll through it (over EST) their model and labels, and has a key from which each
//! device's credential is derived (`domain::GroupKey`). The port `EnrollmentGroupStore` keeps
//! groups and their keys (sealed at rest: `store`); `EnrollmentGroupService` is what the
//! admin routes call.
//!
//! Must not: let a group key out except once, in the answer to the group's creation; every
//! change is recorded as an operator action by the store, in the change's transaction.

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use domain::{DeviceModel, EnrollmentGroupName, GroupKey, Labels, TenantId};

use crate::StoreError;

/// A group as operators see it (never with its key).
#[derive(Debug, Clone, PartialEq)]
pub struct EnrollmentGroup {
    pub name: EnrollmentGroupName,
    pub tenant: TenantId,
    pub model: DeviceModel,
    pub labels: Labels,
    /// A disabled group enrolls nothing; devices it enrolled are not affected.
    pub enabled: bool,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// What an operator asks for when creating a group.
#[derive(Debug, Clone)]
pub struct NewEnrollmentGroup {
    pub name: EnrollmentGroupName,
    pub tenant: TenantId,
    pub model: DeviceModel,
    pub labels: Labels,
}

/// Another group already has this name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("an enrollment group named {0} already exists")]
pub struct GroupNameTaken(pub EnrollmentGroupName);

#[derive(Debug, thiserror::Error)]
pub enum EnrollmentGroupError {
    #[error(transparent)]
    NameTaken(#[from] GroupNameTaken),
    #[error("no such enrollment group")]
    NotFound,
    #[error(transparent)]
    Store(#[from] StoreError),
}

#[async_trait]
pub trait EnrollmentGroupStore: Send + Sync + 'static {
    /// Stores the group with its key (sealed), recording `actor`'s action with it.
    async fn create(
        &self,
        group: &NewEnrollmentGroup,
        key: &GroupKey,
        actor: &str,
    ) -> Result<Result<EnrollmentGroup, GroupNameTaken>, StoreError>;

    /// The groups, of one tenant or of all, by name.
    async fn list(&self, tenant: Option<&TenantId>) -> Result<Vec<EnrollmentGroup>, StoreError>;

    async fn get(&self, name: &EnrollmentGroupName) -> Result<Option<EnrollmentGroup>, StoreError>;

    /// Enables or disables the group, recording `actor`'s action; `None`: no such group.
    async fn set_enabled(
        &self,
        name: &EnrollmentGroupName,
        enabled: bool,
        actor: &str,
    ) -> Result<Option<EnrollmentGroup>, StoreError>;

    /// The group named `name` with its key (disabled or not, so that a refusal can say
    /// why), to check a device's credential against: one indexed read. A missing group costs
    /// what a present one does (the same read, a key opened), so that its absence does not
    /// show in the time of the answer.
    async fn with_key(
        &self,
        name: &EnrollmentGroupName,
    ) -> Result<Option<(EnrollmentGroup, GroupKey)>, StoreError>;

    /// Every enabled group with its key, for a device that names none; or `None`, having
    /// opened no key, when there are more than `at_most` (at most `at_most + 1` are read).
    async fn enabled_with_keys(
        &self,
        at_most: usize,
    ) -> Result<Option<Vec<(EnrollmentGroup, GroupKey)>>, StoreError>;
}

/// A group just created, with its key: the only time the key is shown.
#[derive(Debug)]
pub struct CreatedGroup {
    pub group: EnrollmentGroup,
    pub key: GroupKey,
}

/// Where new group keys come from: the OS's randomness in service, fixed bytes in tests.
pub type GroupKeySource = Arc<dyn Fn() -> GroupKey + Send + Sync>;

/// The operators' use cases for enrollment groups.
pub struct EnrollmentGroupService {
    store: Arc<dyn EnrollmentGroupStore>,
    new_key: GroupKeySource,
}

impl EnrollmentGroupService {
    pub fn new(store: Arc<dyn EnrollmentGroupStore>, new_key: GroupKeySource) -> Self {
        Self { store, new_key }
    }

    /// A group with a fresh random key.
    pub async fn create(
        &self,
        group: NewEnrollmentGroup,
        actor: &str,
    ) -> Result<CreatedGroup, EnrollmentGroupError> {
        let key = (self.new_key)();
        let group = self.store.create(&group, &key, actor).await??;
        Ok(CreatedGroup { group, key })
    }

    pub async fn list(
        &self,
        tenant: Option<&TenantId>,
    ) -> Result<Vec<EnrollmentGroup>, EnrollmentGroupError> {
        Ok(self.store.list(tenant).await?)
    }

    pub async fn get(
        &self,
        name: &EnrollmentGroupName,
    ) -> Result<EnrollmentGroup, EnrollmentGroupError> {
        self.store
            .get(name)
            .await?
            .ok_or(EnrollmentGroupError::NotFound)
    }

    pub async fn set_enabled(
        &self,
        name: &EnrollmentGroupName,
        enabled: bool,
        actor: &str,
    ) -> Result<EnrollmentGroup, EnrollmentGroupError> {
        self.store
            .set_enabled(name, enabled, actor)
            .await?
            .ok_or(EnrollmentGroupError::NotFound)
    }
}

/// A group key from the operating system's randomness.
pub fn random_group_key() -> GroupKey {
    let mut bytes = [0u8; GroupKey::LEN];
    getrandom::fill(&mut bytes).expect("the operating system provides randomness");
    GroupKey::from_bytes(bytes)
}
