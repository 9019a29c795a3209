-- The event store, in the shape postgres-es reads and writes (it names its insert columns,
-- so the extra columns below are filled by their defaults), plus what "all events" readers
-- need: a gap-safe commit order.
--
-- Commit order. `position` and `transaction_id` are handed out when a row is inserted, not
-- when its transaction commits, so a reader that pages by `position` alone could pass over a
-- row whose transaction commits late. Readers of all events (relay, replay, analysts' feed)
-- therefore only read rows with
--     transaction_id < pg_snapshot_xmin(pg_current_snapshot())
-- (every transaction below the snapshot's xmin has finished, so no row can still appear
-- there) and page by (transaction_id, position). That order is total and stable: anything
-- committed later sorts after every row already read.
CREATE TABLE events
(
    aggregate_type text        NOT NULL,
    aggregate_id   text        NOT NULL,
    sequence       bigint      NOT NULL CHECK (sequence >= 1),
    event_type     text        NOT NULL,
    event_version  text        NOT NULL,
    payload        jsonb       NOT NULL,
    metadata       jsonb       NOT NULL,
    position       bigint      NOT NULL GENERATED ALWAYS AS IDENTITY,
    transaction_id xid8        NOT NULL DEFAULT pg_current_xact_id(),
    recorded_at    timestamptz NOT NULL DEFAULT now(),
    -- Denormalised from metadata so tenant-scoped feeds can use an index.
    tenant         text GENERATED ALWAYS AS (metadata ->> 'tenant') STORED,
    PRIMARY KEY (aggregate_type, aggregate_id, sequence)
);

CREATE UNIQUE INDEX events_commit_order ON events (transaction_id, position);

-- Required by postgres-es when snapshots are enabled; this service stores events only
-- (aggregates are a handful of events), but the table keeps the schema postgres-es expects.
CREATE TABLE snapshots
(
    aggregate_type   text   NOT NULL,
    aggregate_id     text   NOT NULL,
    last_sequence    bigint NOT NULL CHECK (last_sequence >= 0),
    current_snapshot bigint NOT NULL CHECK (current_snapshot >= 0),
    payload          jsonb  NOT NULL,
    PRIMARY KEY (aggregate_type, aggregate_id, last_sequence)
);
