-- The asynchronous path: the relay's checkpoint, the analysts' tenant-scoped feed, the device
-- read model with its projector's checkpoint, and dead letters.

-- GET /v1/events pages one tenant's events in commit order.
CREATE INDEX events_tenant_commit_order ON events (tenant, transaction_id, position);

-- Where the relay (nats crate) has published up to, in commit order. One row per relay name;
-- only the relay holding the advisory lock writes it.
CREATE TABLE relay_checkpoints
(
    relay          text        PRIMARY KEY,
    transaction_id xid8        NOT NULL,
    position       bigint      NOT NULL,
    updated_at     timestamptz NOT NULL DEFAULT now()
);

-- The device read model (projections crate). One row per device, at the version of the last
-- event applied; the projector applies an event only when its sequence is version + 1 (a gap
-- is filled from the event store first), in the same transaction as the checkpoint.
CREATE TABLE device_view
(
    id            uuid        PRIMARY KEY,
    tenant        text        NOT NULL,
    serial_number text        NOT NULL,
    model         text        NOT NULL,
    labels        jsonb       NOT NULL,
    status        text        NOT NULL,
    certificate   jsonb,
    failure       jsonb,
    version       bigint      NOT NULL,
    created_at    timestamptz NOT NULL,
    updated_at    timestamptz NOT NULL
);

-- Listing pages by (created_at, id) within a tenant; filters narrow that scan.
CREATE INDEX device_view_listing ON device_view (tenant, created_at, id);
CREATE INDEX device_view_labels ON device_view USING gin (labels jsonb_path_ops);

-- Each projection's checkpoint: the furthest commit-order position it has applied, and how
-- many events it applied in all (for status and lag).
CREATE TABLE projection_checkpoints
(
    projection     text        PRIMARY KEY,
    transaction_id xid8        NOT NULL,
    position       bigint      NOT NULL,
    events_applied bigint      NOT NULL DEFAULT 0,
    updated_at     timestamptz NOT NULL DEFAULT now()
);

-- Messages a consumer gave up on after its last delivery, with the error, for operators to
-- list, retry or discard. One row per (consumer, event): a message that fails again after a
-- retry updates its row instead of adding one.
CREATE TABLE dead_letters
(
    id              uuid        PRIMARY KEY,
    consumer        text        NOT NULL,
    event_id        uuid        NOT NULL,
    subject         text        NOT NULL,
    stream_sequence bigint      NOT NULL,
    tenant          text,
    deliveries      bigint      NOT NULL,
    error           text        NOT NULL,
    -- The message as received (normally the JSON envelope), kept as text so that even a
    -- message that is not JSON can be inspected.
    payload         text        NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    UNIQUE (consumer, event_id)
);
