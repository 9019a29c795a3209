-- Appends :devices synthetic devices (DeviceRegistered then CertificateIssued each) to the
-- event store, in 20 tenants, for the rebuild benchmark. The payloads are shaped like real
-- ones (a real CSR and certificate PEM, labels, a request id); ids are not derived from the
-- serials, which nothing in a rebuild checks. Run with psql -v devices=N.
INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata)
SELECT 'device', d.id::text, e.sequence, e.event_type, '1', e.payload, jsonb_build_object('tenant', d.tenant, 'actor', 'bench')
  FROM (SELECT md5('bench-device-' || g)::uuid AS id, 'bench-' || (g % 20) AS tenant, g
          FROM generate_series(1, :devices) AS g) AS d
 CROSS JOIN LATERAL (VALUES
    (1::bigint, 'DeviceRegistered', jsonb_build_object('DeviceRegistered', jsonb_build_object(
        'tenant', d.tenant, 'serial_number', 'SN-' || d.g, 'model', 'Gateway X' || (d.g % 7),
        'labels', jsonb_build_object('site', 'site-' || (d.g % 50)),
        'request_id', md5('request-' || d.g)::uuid::text,
        'csr', E'-----BEGIN CERTIFICATE REQUEST-----\nMIHPMHYCAQAwFDESMBAGA1UEAwwJREVNTy0wMDAxMFkwEwYHKoZIzj0CAQYIKoZI\nzj0DAQcDQgAE2b8m021r1U3vHIVjY7NLKkH8nFcHxs87VeA5ri1rnhXKU5czMhdh\n4zZo8VVAaaxtV03hFVFo/ZVFCRa5p+SdzqAAMAoGCCqGSM49BAMCA0kAMEYCIQDB\nyCorjAqOfRFO2zOisKTY5B4dWlvGgGDGd1at9cQbegIhANEPvNEGvGWo9eCB8XoC\nb4LvwkKBay/xuorl0ZUz+H71\n-----END CERTIFICATE REQUEST-----\n'))),
    (2::bigint, 'CertificateIssued', jsonb_build_object('CertificateIssued', jsonb_build_object(
        'request_id', md5('request-' || d.g)::uuid::text,
        'certificate', jsonb_build_object(
            'pem', E'-----BEGIN CERTIFICATE-----\nMIIBrDCCAVKgAwIBAgIQZpeCE9YWWfcaiOJv073oCjAKBggqhkjOPQQDAjAlMSMw\nIQYDVQQDDBpkZXZpY2UtcHJvdmlzaW9uaW5nIGRldiBDQTAeFw0yNjExMjUxNjU1\nNDVaFw0yNzExMjUxNzAwNDVaMBQxEjAQBgNVBAMMCURFTU8tMDAwMTBZMBMGByqG\nSM49AgEGCCqGSM49AwEHA0IABNm/JtNta9VN7xyFY2OzSypB/JxXB8bPO1XgOa4t\na54VylOXMzIXYeM2aPFVQGmsbVdN4RVRaP2VRQkWuafknc6jdTBzMB8GA1UdIwQY\nMBaAFJx8Ho6wNyLN72DeDJygsHkELg0WMA4GA1UdDwEB/wQEAwIHgDATBgNVHSUE\nDDAKBggrBgEFBQcDAjAdBgNVHQ4EFgQUtRf9plOlsHW//jdmbjmi0DZcQmswDAYD\nVR0TAQH/BAIwADAKBggqhkjOPQQDAgNIADBFAiBUjHDwI/HvIFn8SPpsq2OCxt3o\neKmJmeg4MFn6GG9HBgIhAN+GIJVC0y5HjmNSk4QS3Ny9CSiTHWd6QA3o45uGOjKJ\n-----END CERTIFICATE-----\n',
            'serial', md5('cert-' || d.g), 'fingerprint_sha256', md5('fp-' || d.g) || md5('fp2-' || d.g),
            'not_before', '2026-11-25T16:55:45Z', 'not_after', '2027-11-25T17:00:45Z'))))
 ) AS e(sequence, event_type, payload)
 ORDER BY d.g, e.sequence;
