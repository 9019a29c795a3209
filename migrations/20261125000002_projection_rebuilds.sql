-- Rebuilds of a read model into a shadow table while the live one keeps serving (one row per
-- projection: the current or last rebuild). The checkpoint is the commit-order position the
-- shadow has reached, so a cancelled or failed rebuild resumes where it stopped.
CREATE TABLE projection_rebuilds
(
    projection     text        PRIMARY KEY,
    state          text        NOT NULL CHECK (state IN ('running', 'cancelling', 'cancelled', 'failed', 'completed')),
    transaction_id xid8        NOT NULL DEFAULT '0',
    position       bigint      NOT NULL DEFAULT 0,
    events_done    bigint      NOT NULL DEFAULT 0,
    -- Events in the store when the rebuild started: the progress bar's denominator.
    events_total   bigint      NOT NULL,
    requested_by   text        NOT NULL,
    started_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    finished_at    timestamptz,
    last_error     text
);
