-- Idempotency records: one per (tenant, route, key), written by a trigger on `events` in the
-- same transaction as the command's events, from the event metadata the command service
-- sets. So a command's effect and its idempotency record commit together or not at all: a
-- retry after a crash between commit and response finds the record, and a concurrent
-- duplicate that committed second is rolled back with its events.
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
    transaction_id      xid8        NOT NULL DEFAULT pg_current_xact_id(),
    created_at          timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant, route, idempotency_key)
);

-- Retention purges scan by age.
CREATE INDEX idempotency_keys_created_at ON idempotency_keys (created_at);

CREATE FUNCTION record_idempotency_key() RETURNS trigger
    LANGUAGE plpgsql AS
$$
BEGIN
    -- A command may append several events; they share one record, which ends up holding the
    -- last sequence. A record written by another transaction is a duplicate execution: fail
    -- with unique_violation so this transaction (events included) rolls back, and the
    -- caller replays the recorded outcome instead.
    INSERT INTO idempotency_keys (tenant, route, idempotency_key, request_fingerprint,
                                  aggregate_id, sequence)
    VALUES (NEW.metadata ->> 'tenant', NEW.metadata ->> 'idempotency_route',
            NEW.metadata ->> 'idempotency_key', NEW.metadata ->> 'request_fingerprint',
            NEW.aggregate_id, NEW.sequence)
    ON CONFLICT (tenant, route, idempotency_key) DO UPDATE
        SET sequence = EXCLUDED.sequence
        WHERE idempotency_keys.transaction_id = pg_current_xact_id();
    IF NOT FOUND THEN
        RAISE EXCEPTION 'idempotency key already used by another command'
            USING ERRCODE = 'unique_violation', CONSTRAINT = 'idempotency_keys_pkey';
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER events_record_idempotency_key
    AFTER INSERT
    ON events
    FOR EACH ROW
    WHEN (NEW.metadata ? 'idempotency_key')
EXECUTE FUNCTION record_idempotency_key();
