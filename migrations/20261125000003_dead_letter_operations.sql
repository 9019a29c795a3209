-- Operators retry or discard dead letters. A retry is requested by an operator and carried
-- out by a worker that hosts the consumer ('retry_requested' -> 'retrying' -> 'retried', or
-- back to 'dead' with the new error); a discarded letter is never processed again.
ALTER TABLE dead_letters
    ADD COLUMN state       text        NOT NULL DEFAULT 'dead'
        CHECK (state IN ('dead', 'retry_requested', 'retrying', 'retried', 'discarded')),
    ADD COLUMN retries     integer     NOT NULL DEFAULT 0,
    ADD COLUMN resolved_by text,
    ADD COLUMN resolved_at timestamptz;

CREATE INDEX dead_letters_retry_requested ON dead_letters (updated_at) WHERE state = 'retry_requested';
CREATE INDEX dead_letters_listing ON dead_letters (created_at DESC, id);

-- Every operator action (who, when, what, on what), for the audit trail.
CREATE TABLE operator_actions
(
    id     uuid        PRIMARY KEY,
    actor  text        NOT NULL,
    action text        NOT NULL,
    target text        NOT NULL,
    at     timestamptz NOT NULL DEFAULT now()
);
