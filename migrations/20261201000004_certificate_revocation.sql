-- Certificates can be revoked (CertificateRevoked). device_stats needs each member's live
-- certificate (issued and not revoked) for the status rule: a renewal's `superseded`
-- revocation names the certificate before the live one, so the serial is kept, and
-- has_certificate now means "holds a live certificate". Until now no certificate was ever
-- revoked, so every member with a certificate holds its latest one: the one device_view shows.
ALTER TABLE device_stats_members ADD COLUMN live_certificate text;

UPDATE device_stats_members m
   SET live_certificate = v.certificate ->> 'serial'
  FROM device_view v
 WHERE v.id = m.id AND m.has_certificate;
