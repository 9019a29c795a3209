-- The current CRL of each issuing CA, as the worker signed it and the api serves it. One row
-- per CA: a new CRL replaces the row only if the row still holds the number it followed
-- (`crl_number` strictly increases, even with several workers).
CREATE TABLE certificate_revocation_lists
(
    ca               text        PRIMARY KEY,
    crl_number       bigint      NOT NULL,
    this_update      timestamptz NOT NULL,
    next_update      timestamptz NOT NULL,
    revocations_seen bigint      NOT NULL,
    entries          bigint      NOT NULL,
    der              bytea       NOT NULL,
    published_at     timestamptz NOT NULL DEFAULT now()
);
