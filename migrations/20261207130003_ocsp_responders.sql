-- Tenants' CAs certify the api's OCSP responder key, which never leaves the api: the api
-- registers its public key here at start (`ocsp_responder_keys`), and the worker certifies each
-- registered key for each tenant CA that answers OCSP, renewing before expiry
-- (`ocsp_signer_certificates`: the delegated signer's certificate, then the CA's). The api
-- picks up new certificates without a restart.
CREATE TABLE ocsp_responder_keys
(
    -- Lowercase hex SHA-256 of the key's SubjectPublicKeyInfo (DER).
    key_sha256    text        PRIMARY KEY,
    spki          bytea       NOT NULL,
    registered_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE ocsp_signer_certificates
(
    ca          text        NOT NULL,
    key_sha256  text        NOT NULL REFERENCES ocsp_responder_keys (key_sha256),
    chain_pem   text        NOT NULL,
    not_after   timestamptz NOT NULL,
    certified_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (ca, key_sha256)
);

CREATE INDEX ocsp_signer_certificates_by_key ON ocsp_signer_certificates (key_sha256);
