-- A read model added later fills itself from the event store before following the stream.
-- Its progress is kept here, apart from the projection's checkpoint, so that an interrupted
-- backfill resumes where it stopped instead of passing for done: "the projection has a
-- checkpoint" only says that some events were applied.
--
-- A projection whose backfill was recorded only as a checkpoint (before this table existed)
-- has no row here, so its backfill runs again from the start: it is idempotent (each device's
-- place in the counts carries its version), and it counts the devices an interrupted
-- backfill left out.
CREATE TABLE projection_backfills (
    projection      text        PRIMARY KEY,
    transaction_id  xid8        NOT NULL DEFAULT '0',
    position        bigint      NOT NULL DEFAULT 0,
    events_folded   bigint      NOT NULL DEFAULT 0,
    completed_at    timestamptz,
    updated_at      timestamptz NOT NULL DEFAULT now()
);
