-- Idempotency records: one per (tenant, route, key). The event store appends a command's events
-- and inserts its record in one statement (store/src/single_statement_event_repository.rs), so
-- they commit together or not at all: a retry after a crash between commit and response finds
-- the record, and a second execution under the same key fails on this primary key and rolls
-- back with its events.
CREATE TABLE idempotency_keys
(
    tenant              text        NOT NULL,
    route               text        NOT NULL,
    idempotency_key     text        NOT NULL,
    -- SHA-256 (hex) of the canonical request body.
    request_fingerprint text        NOT NULL,
    aggregate_id        text        NOT NULL,
    -- The aggregate version the command produced; the response is rebuilt from it.
    sequence            bigint      NOT NULL,
    created_at          timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant, route, idempotency_key)
);

-- Retention purges select by age. Rows arrive in time order, so a BRIN index is enough and
-- costs next to nothing on the insert path.
CREATE INDEX idempotency_keys_created_at ON idempotency_keys USING brin (created_at);
