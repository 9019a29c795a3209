-- The certificate_status read model: every certificate the CA issued to a device, with its
-- revocation once there is one; what CRLs and OCSP answers are made from. Filled from the
-- whole event store on the first start of a worker that has it (the runner's backfill).
-- `certificate_status_devices` holds each device's version, which makes applying an event
-- twice a no-op.
CREATE TABLE certificate_status_devices
(
    id      uuid   PRIMARY KEY,
    tenant  text   NOT NULL,
    version bigint NOT NULL
);

CREATE TABLE certificate_status
(
    serial     text        PRIMARY KEY,
    device_id  uuid        NOT NULL,
    tenant     text        NOT NULL,
    not_before timestamptz NOT NULL,
    not_after  timestamptz NOT NULL,
    revoked_at timestamptz,
    reason     text
);

CREATE INDEX certificate_status_by_device ON certificate_status (device_id);
CREATE INDEX certificate_status_revoked ON certificate_status (revoked_at) WHERE revoked_at IS NOT NULL;
