//! `app::EnrollmentGroupStore` on Postgres: the `enrollment_groups` table, with each group's
//! key sealed (`GroupKeySealer`) before it is written and opened only when a device's
//! credential is checked: a named group by its primary key (a missing one opens a decoy, so
//! that it costs what a present one does), the label-less search at most `at_most + 1` rows
//! (opening none when there are more). Every change is recorded (`OperatorAction`) in its
//! transaction.

use app::{EnrollmentGroup, EnrollmentGroupStore, GroupNameTaken, NewEnrollmentGroup, StoreError};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use domain::{DeviceModel, EnrollmentGroupName, GroupKey, Labels, TenantId};
use sqlx::postgres::PgRow;
use sqlx::{PgPool, Row};
use std::collections::BTreeMap;
use std::sync::Arc;

use crate::operator_actions::OperatorAction;
use crate::recorded_event_row::unavailable;
use crate::sealed_group_key::GroupKeySealer;

const COLUMNS: &str = "name, tenant, model, labels, enabled, created_by, created_at, updated_at";

const INSERT: &str =
    "INSERT INTO enrollment_groups (name, tenant, model, labels, sealed_key, created_by) \
     VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (name) DO NOTHING \
     RETURNING name, tenant, model, labels, enabled, created_by, created_at, updated_at";

const SET_ENABLED: &str =
    "UPDATE enrollment_groups SET enabled = $2, updated_at = now() WHERE name = $1 \
     RETURNING name, tenant, model, labels, enabled, created_by, created_at, updated_at";

const WITH_KEY: &str = "SELECT name, tenant, model, labels, enabled, created_by, created_at, \
     updated_at, sealed_key FROM enrollment_groups WHERE name = $1";

const ENABLED_WITH_KEYS: &str = "SELECT name, tenant, model, labels, enabled, created_by, \
     created_at, updated_at, sealed_key FROM enrollment_groups WHERE enabled LIMIT $1";

#[derive(Clone)]
pub struct PostgresEnrollmentGroups {
    pool: PgPool,
    sealer: Arc<GroupKeySealer>,
    /// A key sealed under no group's name, opened when a named group is missing.
    decoy: Arc<(EnrollmentGroupName, Vec<u8>)>,
}

impl PostgresEnrollmentGroups {
    pub fn new(pool: PgPool, sealer: Arc<GroupKeySealer>) -> Self {
        let name = EnrollmentGroupName::parse("decoy").expect("a valid name");
        let sealed = sealer.seal(&name, &GroupKey::from_bytes([0; GroupKey::LEN]));
        Self {
            pool,
            sealer,
            decoy: Arc::new((name, sealed)),
        }
    }

    /// The group in `row` and its key, opened.
    fn with_opened_key(&self, row: &PgRow) -> Result<(EnrollmentGroup, GroupKey), StoreError> {
        let group = group_from(row)?;
        let sealed: Vec<u8> = row.try_get("sealed_key").map_err(unavailable)?;
        let key = self
            .sealer
            .open(&group.name, &sealed)
            .map_err(|e| StoreError::Corrupt(e.into()))?;
        Ok((group, key))
    }
}

fn target(name: &EnrollmentGroupName) -> String {
    format!("enrollment_group:{name}")
}

fn corrupt(column: &str) -> StoreError {
    StoreError::Corrupt(format!("enrollment_groups.{column}").into())
}

fn group_from(row: &PgRow) -> Result<EnrollmentGroup, StoreError> {
    let text = |column: &str| row.try_get::<String, _>(column).map_err(unavailable);
    let labels: sqlx::types::Json<BTreeMap<String, String>> =
        row.try_get("labels").map_err(unavailable)?;
    Ok(EnrollmentGroup {
        name: EnrollmentGroupName::parse(&text("name")?).map_err(|_| corrupt("name"))?,
        tenant: TenantId::parse(&text("tenant")?).map_err(|_| corrupt("tenant"))?,
        model: DeviceModel::parse(&text("model")?).map_err(|_| corrupt("model"))?,
        labels: Labels::parse(labels.0).map_err(|_| corrupt("labels"))?,
        enabled: row.try_get("enabled").map_err(unavailable)?,
        created_by: text("created_by")?,
        created_at: row
            .try_get::<DateTime<Utc>, _>("created_at")
            .map_err(unavailable)?,
        updated_at: row
            .try_get::<DateTime<Utc>, _>("updated_at")
            .map_err(unavailable)?,
    })
}

#[async_trait]
impl EnrollmentGroupStore for PostgresEnrollmentGroups {
    #[tracing::instrument(skip_all, fields(group = %group.name), err)]
    async fn create(
        &self,
        group: &NewEnrollmentGroup,
        key: &GroupKey,
        actor: &str,
    ) -> Result<Result<EnrollmentGroup, GroupNameTaken>, StoreError> {
        let sealed = self.sealer.seal(&group.name, key);
        let mut tx = self.pool.begin().await.map_err(unavailable)?;
        let row = sqlx::query(INSERT)
            .bind(group.name.as_str())
            .bind(group.tenant.as_str())
            .bind(group.model.as_str())
            .bind(sqlx::types::Json(group.labels.as_map()))
            .bind(sealed)
            .bind(actor)
            .fetch_optional(&mut *tx)
            .await
            .map_err(unavailable)?;
        let Some(row) = row else {
            return Ok(Err(GroupNameTaken(group.name.clone())));
        };
        let target = target(&group.name);
        OperatorAction {
            actor,
            action: "create-enrollment-group",
            target: &target,
        }
        .record(&mut *tx)
        .await?;
        tx.commit().await.map_err(unavailable)?;
        Ok(Ok(group_from(&row)?))
    }

    async fn list(&self, tenant: Option<&TenantId>) -> Result<Vec<EnrollmentGroup>, StoreError> {
        let sql = format!(
            "SELECT {COLUMNS} FROM enrollment_groups WHERE $1::text IS NULL OR tenant = $1 ORDER BY name"
        );
        let rows = sqlx::query(&sql)
            .bind(tenant.map(TenantId::as_str))
            .fetch_all(&self.pool)
            .await
            .map_err(unavailable)?;
        rows.iter().map(group_from).collect()
    }

    async fn get(&self, name: &EnrollmentGroupName) -> Result<Option<EnrollmentGroup>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM enrollment_groups WHERE name = $1");
        let row = sqlx::query(&sql)
            .bind(name.as_str())
            .fetch_optional(&self.pool)
            .await
            .map_err(unavailable)?;
        row.as_ref().map(group_from).transpose()
    }

    #[tracing::instrument(skip_all, fields(group = %name, enabled), err)]
    async fn set_enabled(
        &self,
        name: &EnrollmentGroupName,
        enabled: bool,
        actor: &str,
    ) -> Result<Option<EnrollmentGroup>, StoreError> {
        let mut tx = self.pool.begin().await.map_err(unavailable)?;
        let row = sqlx::query(SET_ENABLED)
            .bind(name.as_str())
            .bind(enabled)
            .fetch_optional(&mut *tx)
            .await
            .map_err(unavailable)?;
        let Some(row) = row else {
            return Ok(None);
        };
        let target = target(name);
        OperatorAction {
            actor,
            action: if enabled {
                "enable-enrollment-group"
            } else {
                "disable-enrollment-group"
            },
            target: &target,
        }
        .record(&mut *tx)
        .await?;
        tx.commit().await.map_err(unavailable)?;
        Ok(Some(group_from(&row)?))
    }

    async fn with_key(
        &self,
        name: &EnrollmentGroupName,
    ) -> Result<Option<(EnrollmentGroup, GroupKey)>, StoreError> {
        let row = sqlx::query(WITH_KEY)
            .bind(name.as_str())
            .fetch_optional(&self.pool)
            .await
            .map_err(unavailable)?;
        match row {
            Some(row) => self.with_opened_key(&row).map(Some),
            None => {
                let (name, sealed) = &*self.decoy;
                std::hint::black_box(self.sealer.open(name, sealed).is_ok());
                Ok(None)
            }
        }
    }

    async fn enabled_with_keys(
        &self,
        at_most: usize,
    ) -> Result<Option<Vec<(EnrollmentGroup, GroupKey)>>, StoreError> {
        let limit = i64::try_from(at_most).unwrap_or(i64::MAX - 1) + 1;
        let rows = sqlx::query(ENABLED_WITH_KEYS)
            .bind(limit)
            .fetch_all(&self.pool)
            .await
            .map_err(unavailable)?;
        if rows.len() > at_most {
            return Ok(None);
        }
        rows.iter()
            .map(|row| self.with_opened_key(row))
            .collect::<Result<_, _>>()
            .map(Some)
    }
}
