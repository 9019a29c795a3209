-- Which CA issued each certificate (its id, `IssuingCaId`), now that tenants have CAs of
-- their own: a CA's CRL lists its own revocations only, OCSP answers for a CA's own
-- certificates, and operators see how many live certificates each CA still has. NULL for a
-- certificate folded before this column existed or recorded before certificates named their
-- issuer: all of those were issued by the platform's CA. Adding a nullable column rewrites
-- nothing.
ALTER TABLE certificate_status ADD COLUMN issuer text;
