-- Tamper evidence for the audit trail (docs/CONTRACT.md §7.4): every event a writer appends is
-- linked into that writer's chain by an HMAC over its content and its predecessor's HMAC, keyed
-- by a key derived from the encryption keys (internal/auditchain). Events written before this
-- migration keep NULL chain columns: `resolverd audit verify` counts them as unchained, never as
-- tampered.
--
-- No foreign key or unique index links events: retention (and, later, dropping whole partitions)
-- removes a chain's oldest events freely, and inserts stay as cheap as they were. Verification
-- walks the table in id order, which within a chain is the order of appending: the identity keeps
-- its default (no cache), and a chain's writes are serialised until each commits.

-- +goose Up
ALTER TABLE audit_events
    ADD COLUMN chain_id   uuid,
    -- The event's position in its chain: 1, 2, 3, ...
    ADD COLUMN chain_seq  bigint,
    -- HMAC-SHA256 (first 16 bytes) of the event, and the same of its predecessor (NULL for a
    -- chain's first event).
    ADD COLUMN mac        bytea,
    ADD COLUMN prev_mac   bytea,
    -- The id of the encryption key the MAC key was derived from (encryption_keys ids; no foreign
    -- key: a retired key must not hold back retention, nor retention the key's retirement).
    ADD COLUMN mac_key_id text;
-- Chained events have every chain column (prev_mac aside); unchained ones none. NOT VALID: the
-- events already there have none, and checking them would scan the whole table.
ALTER TABLE audit_events ADD CONSTRAINT audit_events_chain_complete CHECK (
    (chain_id IS NULL AND chain_seq IS NULL AND mac IS NULL AND prev_mac IS NULL AND mac_key_id IS NULL)
    OR (chain_id IS NOT NULL AND chain_seq > 0 AND octet_length(mac) = 16 AND mac_key_id IS NOT NULL
        AND (prev_mac IS NULL) = (chain_seq = 1) AND (prev_mac IS NULL OR octet_length(prev_mac) = 16))
) NOT VALID;

-- +goose Down
ALTER TABLE audit_events DROP CONSTRAINT audit_events_chain_complete,
    DROP COLUMN chain_id, DROP COLUMN chain_seq, DROP COLUMN mac, DROP COLUMN prev_mac, DROP COLUMN mac_key_id;
