-- Every read model now fills itself from the event store on a worker's first start (the
-- projections runner's backfill, progress in projection_backfills), device_view included.
-- A deployment whose device_view is already live has been following the stream from the
-- start, and its checkpoint says so: its backfill is marked complete at that checkpoint,
-- so that the first worker after this release does not fold the whole event store again.
-- Where device_view never applied a batch (no checkpoint), the backfill runs: it is
-- idempotent by version, and fills what the stream may no longer hold.
INSERT INTO projection_backfills (projection, transaction_id, position, events_folded, completed_at)
SELECT projection, transaction_id, position, 0, now()
  FROM projection_checkpoints
 WHERE projection = 'device_view'
ON CONFLICT (projection) DO NOTHING;
