-- no-transaction
-- A CA's revocations (its CRL) and its live certificates (the count operators watch during a
-- rotation), read without walking other CAs' rows. Built CONCURRENTLY, outside a transaction
-- (hence the first line), as `events_tenant_type_commit_order` is: a plain CREATE INDEX on a
-- large table would block the projector's writes. If the build fails, it leaves an INVALID
-- index of this name: `DROP INDEX CONCURRENTLY certificate_status_by_issuer;`, then
-- `api migrate` again.
CREATE INDEX CONCURRENTLY certificate_status_by_issuer
    ON certificate_status (issuer, revoked_at, not_after);
