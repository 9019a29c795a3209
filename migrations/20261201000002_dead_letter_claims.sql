-- A worker's claim on a dead letter's retry is a lease: if the worker dies (or cannot record
-- the outcome) the claim expires and another worker takes the retry up again, instead of the
-- letter staying 'retrying' for good. `claim_id` names the claim, so that only its holder
-- records the outcome. Rows claimed before this migration have no expiry: they count as
-- expired and are taken up again (retries are idempotent).
ALTER TABLE dead_letters
    ADD COLUMN claim_id         uuid,
    ADD COLUMN claim_expires_at timestamptz;

CREATE INDEX dead_letters_retrying ON dead_letters (claim_expires_at) WHERE state = 'retrying';
