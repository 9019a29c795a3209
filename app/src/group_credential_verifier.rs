//! Which enrollment group a device's credential belongs to: the first step of an EST
//! enrollment, taken before anything else of the request is read or any shared capacity is
//! held. Its proof, [`AuthenticatedDevice`], is made only here, so an enrollment cannot start
//! without it.
//!
//! The cost of checking a credential is bounded whatever the number of groups:
//! - a **named group** (the URL's label, or `<serial>@<group>` in the user name) is one
//!   indexed read, one key opened and one HMAC, whether or not the group exists: an unknown
//!   group is answered as a wrong credential, after the same work (an HMAC against a decoy
//!   key), so that no one learns which groups exist;
//! - **no name**: every enabled group is tried, but only while there are at most
//!   `label_less_max_groups` of them (`EST_LABELLESS_MAX_GROUPS`); past it the device is told
//!   to name its group, and no key is opened.
//!
//! Must not: say which of a serial, a key or a group was wrong to someone who holds none of
//! them (every failed credential is the same `InvalidCredential`), or keep a presented key.

use std::sync::Arc;

use domain::{DeviceCredential, DeviceKey, EnrollmentGroupName, GroupKey, SerialNumber};

use crate::{EnrollmentError, EnrollmentGroup, EnrollmentGroupStore, EnrollmentRefusal};

/// A device whose credential its enrollment group's key derives, the group enabled: what an
/// enrollment needs, and proof that it was checked (only [`GroupCredentialVerifier`] makes
/// one).
#[derive(Debug)]
pub struct AuthenticatedDevice {
    serial: SerialNumber,
    group: EnrollmentGroup,
}

impl AuthenticatedDevice {
    pub fn serial(&self) -> &SerialNumber {
        &self.serial
    }

    pub fn group(&self) -> &EnrollmentGroup {
        &self.group
    }
}

/// Checks devices' credentials against their enrollment groups' keys.
pub struct GroupCredentialVerifier {
    groups: Arc<dyn EnrollmentGroupStore>,
    label_less_max_groups: usize,
}

impl GroupCredentialVerifier {
    /// Without a group named, at most this many groups are tried, unless configured
    /// otherwise: ~2.5 µs each (a key opened, an HMAC), so about 40 µs per request at most.
    pub const DEFAULT_LABEL_LESS_MAX_GROUPS: usize = 16;

    pub fn new(groups: Arc<dyn EnrollmentGroupStore>, label_less_max_groups: usize) -> Self {
        Self {
            groups,
            label_less_max_groups,
        }
    }

    /// The device that `credential` authenticates, through the group `label` names (the
    /// URL's), or the one the credential names, or else the one enabled group whose key
    /// derives it.
    #[tracing::instrument(skip_all, fields(serial = %credential.serial, group), err(level = "info"))]
    pub async fn authenticate(
        &self,
        label: Option<&EnrollmentGroupName>,
        credential: &DeviceCredential,
    ) -> Result<AuthenticatedDevice, EnrollmentError> {
        let named = credential
            .group_named(label)
            .map_err(|_| EnrollmentRefusal::InvalidCredential)?;
        let group = match named {
            Some(name) => self.named(name, credential).await?,
            None => self.label_less(credential).await?,
        };
        tracing::Span::current().record("group", group.name.as_str());
        if !group.enabled {
            return Err(EnrollmentRefusal::GroupDisabled.into());
        }
        Ok(AuthenticatedDevice {
            serial: credential.serial.clone(),
            group,
        })
    }

    /// The device `serial` of the group `label` names, when `proof` was made with its key,
    /// and that key: for protocols where a device shows that it holds its key without
    /// sending it, and the answer is protected with it too (CMP's password-based MAC).
    /// `proof` is handed the key as the factory burns it (its base64 text) and must check in
    /// constant time. The same work for an unknown group as for a known one (a decoy key),
    /// and the same refusal for any wrong proof.
    #[tracing::instrument(skip_all, fields(serial = %serial, group = %label), err(level = "info"))]
    pub async fn authenticate_proof(
        &self,
        label: &EnrollmentGroupName,
        serial: &SerialNumber,
        proof: &(dyn Fn(&[u8]) -> bool + Sync),
    ) -> Result<(AuthenticatedDevice, DeviceKey), EnrollmentError> {
        let proved = |key: &DeviceKey| proof(key.to_base64().as_bytes());
        let (group, device_key) = match self.groups.with_key(label).await? {
            Some((group, key)) => match key.derive(serial) {
                device_key if proved(&device_key) => (group, device_key),
                _ => return Err(EnrollmentRefusal::InvalidCredential.into()),
            },
            None => {
                std::hint::black_box(proved(&decoy().derive(serial)));
                return Err(EnrollmentRefusal::InvalidCredential.into());
            }
        };
        if !group.enabled {
            return Err(EnrollmentRefusal::GroupDisabled.into());
        }
        let device = AuthenticatedDevice {
            serial: serial.clone(),
            group,
        };
        Ok((device, device_key))
    }

    async fn named(
        &self,
        name: &EnrollmentGroupName,
        credential: &DeviceCredential,
    ) -> Result<EnrollmentGroup, EnrollmentError> {
        match self.groups.with_key(name).await? {
            Some((group, key)) if key.verifies(&credential.serial, &credential.key) => Ok(group),
            Some(_) => Err(EnrollmentRefusal::InvalidCredential.into()),
            None => {
                // The work of a wrong credential, so that an unknown group does not answer
                // sooner.
                std::hint::black_box(decoy().verifies(&credential.serial, &credential.key));
                Err(EnrollmentRefusal::InvalidCredential.into())
            }
        }
    }

    async fn label_less(
        &self,
        credential: &DeviceCredential,
    ) -> Result<EnrollmentGroup, EnrollmentError> {
        let groups = self
            .groups
            .enabled_with_keys(self.label_less_max_groups)
            .await?
            .ok_or(EnrollmentRefusal::GroupNotNamed)?;
        groups
            .into_iter()
            .find(|(_, key)| key.verifies(&credential.serial, &credential.key))
            .map(|(group, _)| group)
            .ok_or_else(|| EnrollmentRefusal::InvalidCredential.into())
    }
}

/// The key an unknown group's credential is checked against (no device's).
fn decoy() -> GroupKey {
    GroupKey::from_bytes([0x5a; GroupKey::LEN])
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use async_trait::async_trait;
    use chrono::Utc;
    use domain::{DeviceModel, Labels, TenantId};

    use super::*;
    use crate::{GroupNameTaken, NewEnrollmentGroup, StoreError};

    /// Groups in memory, counting what is asked of them.
    #[derive(Default)]
    struct Groups {
        groups: Vec<(EnrollmentGroup, GroupKey)>,
        asked: Mutex<Vec<String>>,
    }

    impl Groups {
        fn with(groups: &[(&str, bool)]) -> Self {
            Self {
                groups: groups
                    .iter()
                    .enumerate()
                    .map(|(i, (name, enabled))| (group(name, *enabled), key(i as u8)))
                    .collect(),
                asked: Mutex::default(),
            }
        }

        fn asked(&self) -> Vec<String> {
            self.asked.lock().unwrap().clone()
        }
    }

    fn group(name: &str, enabled: bool) -> EnrollmentGroup {
        EnrollmentGroup {
            name: EnrollmentGroupName::parse(name).unwrap(),
            tenant: TenantId::parse("acme").unwrap(),
            model: DeviceModel::parse("gateway-x").unwrap(),
            labels: Labels::default(),
            enabled,
            created_by: "test".into(),
            created_at: Utc::now(),
            updated_at: Utc::now(),
        }
    }

    fn key(i: u8) -> GroupKey {
        GroupKey::from_bytes([i + 1; GroupKey::LEN])
    }

    #[async_trait]
    impl EnrollmentGroupStore for Groups {
        async fn create(
            &self,
            _: &NewEnrollmentGroup,
            _: &GroupKey,
            _: &str,
        ) -> Result<Result<EnrollmentGroup, GroupNameTaken>, StoreError> {
            unreachable!()
        }
        async fn list(&self, _: Option<&TenantId>) -> Result<Vec<EnrollmentGroup>, StoreError> {
            unreachable!()
        }
        async fn get(
            &self,
            _: &EnrollmentGroupName,
        ) -> Result<Option<EnrollmentGroup>, StoreError> {
            unreachable!()
        }
        async fn set_enabled(
            &self,
            _: &EnrollmentGroupName,
            _: bool,
            _: &str,
        ) -> Result<Option<EnrollmentGroup>, StoreError> {
            unreachable!()
        }
        async fn with_key(
            &self,
            name: &EnrollmentGroupName,
        ) -> Result<Option<(EnrollmentGroup, GroupKey)>, StoreError> {
            self.asked.lock().unwrap().push(format!("with_key {name}"));
            Ok(self.groups.iter().find(|(g, _)| &g.name == name).cloned())
        }
        async fn enabled_with_keys(
            &self,
            at_most: usize,
        ) -> Result<Option<Vec<(EnrollmentGroup, GroupKey)>>, StoreError> {
            self.asked
                .lock()
                .unwrap()
                .push(format!("enabled_with_keys {at_most}"));
            let enabled: Vec<_> = self
                .groups
                .iter()
                .filter(|(g, _)| g.enabled)
                .cloned()
                .collect();
            Ok((enabled.len() <= at_most).then_some(enabled))
        }
    }

    /// The credential of device `serial` of the group whose key is `key`, as `user`.
    fn credential(user: &str, serial: &str, key: &GroupKey) -> DeviceCredential {
        let password = key.device_key(&SerialNumber::parse(serial).unwrap());
        DeviceCredential::parse(user, &password).unwrap()
    }

    fn label(name: &str) -> EnrollmentGroupName {
        EnrollmentGroupName::parse(name).unwrap()
    }

    fn refusal(outcome: Result<AuthenticatedDevice, EnrollmentError>) -> EnrollmentRefusal {
        match outcome {
            Err(EnrollmentError::Refused(refusal)) => refusal,
            other => panic!("not a refusal: {other:?}"),
        }
    }

    #[tokio::test]
    async fn a_named_group_is_one_read_whether_named_by_the_label_or_the_user() {
        let groups = Arc::new(Groups::with(&[("line-1", true), ("line-2", true)]));
        let verifier = GroupCredentialVerifier::new(groups.clone(), 16);
        let by_user = credential("SN-1@line-2", "SN-1", &key(1));
        let device = verifier.authenticate(None, &by_user).await.unwrap();
        assert_eq!(device.group().name.as_str(), "line-2");
        assert_eq!(device.serial().as_str(), "SN-1");
        let by_label = credential("SN-1", "SN-1", &key(1));
        let device = verifier
            .authenticate(Some(&label("line-2")), &by_label)
            .await
            .unwrap();
        assert_eq!(device.group().name.as_str(), "line-2");
        verifier
            .authenticate(Some(&label("line-2")), &by_user)
            .await
            .unwrap();
        assert_eq!(groups.asked(), vec!["with_key line-2"; 3]);
    }

    #[tokio::test]
    async fn an_unknown_group_a_wrong_key_and_a_mismatched_label_are_one_refusal() {
        let groups = Arc::new(Groups::with(&[("line-1", true), ("line-2", true)]));
        let verifier = GroupCredentialVerifier::new(groups.clone(), 16);
        let wrong_key = credential("SN-1@line-2", "SN-1", &key(0));
        let unknown = credential("SN-1@line-9", "SN-1", &key(1));
        let right = credential("SN-1@line-2", "SN-1", &key(1));
        let another_device = credential("SN-2@line-2", "SN-1", &key(1));
        for (label, credential) in [
            (None, &wrong_key),
            (None, &unknown),
            (Some(label("line-9")), &credential("SN-1", "SN-1", &key(1))),
            (Some(label("line-1")), &right),
            (None, &another_device),
        ] {
            assert_eq!(
                refusal(verifier.authenticate(label.as_ref(), credential).await),
                EnrollmentRefusal::InvalidCredential
            );
        }
        // The mismatch is refused without a read; the others read the one group named.
        assert_eq!(
            groups.asked(),
            vec![
                "with_key line-2",
                "with_key line-9",
                "with_key line-9",
                "with_key line-2"
            ]
        );
    }

    #[tokio::test]
    async fn a_proof_made_with_the_device_key_authenticates_and_any_other_is_one_refusal() {
        let groups = Arc::new(Groups::with(&[("line-1", true), ("line-2", false)]));
        let verifier = GroupCredentialVerifier::new(groups.clone(), 16);
        let serial = SerialNumber::parse("SN-1").unwrap();
        let made_with = |expected: String| move |key: &[u8]| key == expected.as_bytes();
        let right = made_with(key(0).device_key(&serial));
        let (device, device_key) = verifier
            .authenticate_proof(&label("line-1"), &serial, &right)
            .await
            .unwrap();
        assert_eq!(device.group().name.as_str(), "line-1");
        assert_eq!(device_key.to_base64(), key(0).device_key(&serial));
        let another_serial = made_with(key(0).device_key(&SerialNumber::parse("SN-2").unwrap()));
        let another_group = made_with(key(1).device_key(&serial));
        for (group, proof) in [
            ("line-1", &another_serial as &(dyn Fn(&[u8]) -> bool + Sync)),
            ("line-1", &another_group),
            ("line-9", &right),
        ] {
            assert_eq!(
                refusal(
                    verifier
                        .authenticate_proof(&label(group), &serial, proof)
                        .await
                        .map(|(device, _)| device)
                ),
                EnrollmentRefusal::InvalidCredential
            );
        }
        let disabled = made_with(key(1).device_key(&serial));
        assert_eq!(
            refusal(
                verifier
                    .authenticate_proof(&label("line-2"), &serial, &disabled)
                    .await
                    .map(|(device, _)| device)
            ),
            EnrollmentRefusal::GroupDisabled
        );
        assert_eq!(groups.asked().len(), 5, "one read each");
    }

    #[tokio::test]
    async fn a_disabled_group_refuses_only_its_own_devices_credentials() {
        let groups = Arc::new(Groups::with(&[("line-1", false)]));
        let verifier = GroupCredentialVerifier::new(groups, 16);
        let right = credential("SN-1@line-1", "SN-1", &key(0));
        assert_eq!(
            refusal(verifier.authenticate(None, &right).await),
            EnrollmentRefusal::GroupDisabled
        );
        let wrong = credential("SN-1@line-1", "SN-1", &key(5));
        assert_eq!(
            refusal(verifier.authenticate(None, &wrong).await),
            EnrollmentRefusal::InvalidCredential
        );
    }

    #[tokio::test]
    async fn without_a_name_at_most_the_bound_of_enabled_groups_is_tried() {
        let groups = Arc::new(Groups::with(&[
            ("line-1", true),
            ("line-2", false),
            ("line-3", true),
        ]));
        let verifier = GroupCredentialVerifier::new(groups.clone(), 2);
        let device = verifier
            .authenticate(None, &credential("SN-1", "SN-1", &key(2)))
            .await
            .unwrap();
        assert_eq!(device.group().name.as_str(), "line-3");
        // A disabled group's device is not found without its group's name.
        assert_eq!(
            refusal(
                verifier
                    .authenticate(None, &credential("SN-1", "SN-1", &key(1)))
                    .await
            ),
            EnrollmentRefusal::InvalidCredential
        );
        assert_eq!(groups.asked(), vec!["enabled_with_keys 2"; 2]);

        let past = GroupCredentialVerifier::new(groups.clone(), 1);
        assert_eq!(
            refusal(
                past.authenticate(None, &credential("SN-1", "SN-1", &key(0)))
                    .await
            ),
            EnrollmentRefusal::GroupNotNamed
        );
        let named = past
            .authenticate(None, &credential("SN-1@line-1", "SN-1", &key(0)))
            .await
            .unwrap();
        assert_eq!(named.group().name.as_str(), "line-1");
    }
}
