-- no-transaction
-- The analysts' feed filtered by event type (`GET /v1/events?type=T`, its long-poll and live
-- forms) reads only the tenant's events of that type, in commit order: without this index
-- it walked the tenant's whole history (`events_tenant_commit_order`) to find a type the
-- tenant rarely has, and every waiting reader did it again after each append.
--
-- Built CONCURRENTLY, outside a transaction (hence the first line): a plain CREATE INDEX on
-- a large `events` table would block appends and hold a transaction id for the whole build,
-- which holds back the commit-order horizon that the relay and the feed read below. One
-- statement only: Postgres runs several statements of one query in one transaction. If the
-- build fails, it leaves an INVALID index of this name: `DROP INDEX CONCURRENTLY
-- events_tenant_type_commit_order;`, then `api migrate` again.
CREATE INDEX CONCURRENTLY events_tenant_type_commit_order
    ON events (tenant, event_type, transaction_id, position);
