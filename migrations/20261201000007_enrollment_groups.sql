-- Enrollment groups: how devices enroll themselves over EST. A group belongs to a tenant and
-- gives the devices enrolled through it their model and labels; its name is the label of its
-- EST URLs. `sealed_key` is the group key sealed with AES-256-GCM under the api's
-- ENROLLMENT_KEY_ENCRYPTION_KEY (a random 96-bit nonce, then the ciphertext and its tag; the
-- group's name is the associated data, so a sealed key opens only in its own row). The clear
-- key is shown once, when the group is created, and is never stored or logged.
CREATE TABLE enrollment_groups
(
    name       text        PRIMARY KEY,
    tenant     text        NOT NULL,
    model      text        NOT NULL,
    labels     jsonb       NOT NULL DEFAULT '{}',
    sealed_key bytea       NOT NULL,
    enabled    boolean     NOT NULL DEFAULT true,
    created_by text        NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX enrollment_groups_by_tenant ON enrollment_groups (tenant, name);
