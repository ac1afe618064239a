-- Data-encryption keys wrapped by a KMS key (docs/CONTRACT.md §7.1): envelope encryption for
-- installations that keep their root key in a KMS (`--kms-key-uri`) instead of giving resolverd the
-- keys themselves (`--encryption-keys`). Each row is one 32-byte key of the same kind as an
-- --encryption-keys key, stored only wrapped (encrypted) by the KMS key; resolverd unwraps them
-- once at start into its keyring. `id` is the id that keyring derives from the key, so the values
-- it seals name it in api_key_key_id and the encryption_keys registry like any other key.
--
-- Rows are never deleted by resolverd: a data key that no secret uses any more still opens old
-- audit records (their chain keys derive from it) with `resolverd audit verify --kms-key-uri`.

-- +goose Up
CREATE TABLE data_encryption_keys (
    id         text PRIMARY KEY CONSTRAINT data_encryption_keys_id_check CHECK (id ~ '^[0-9a-f]{16}$'),
    -- The key as the KMS key wrapped it (the KMS's ciphertext).
    wrapped    bytea NOT NULL CONSTRAINT data_encryption_keys_wrapped_check CHECK (octet_length(wrapped) > 0),
    -- Which KMS key wrapped it: its URI, or for base64key:// (whose URI is the key itself) a
    -- fingerprint, "base64key://sha256:<16 hex>". Never secret.
    kms_key    text NOT NULL CONSTRAINT data_encryption_keys_kms_key_check CHECK (kms_key <> '' AND length(kms_key) <= 2048),
    -- The data key that seals; the others only open. At most one.
    sealing    boolean NOT NULL DEFAULT false,
    created_at timestamptz NOT NULL DEFAULT now(),
    wrapped_at timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX data_encryption_keys_one_sealing ON data_encryption_keys (sealing) WHERE sealing;

-- +goose Down
-- +goose StatementBegin
DO $$
DECLARE
    n bigint;
BEGIN
    SELECT (SELECT count(*) FROM ai_provider_keys k WHERE k.api_key_key_id IN (SELECT id FROM data_encryption_keys))
         + (SELECT count(*) FROM user_ai_provider_keys k WHERE k.api_key_key_id IN (SELECT id FROM data_encryption_keys))
      INTO n;
    IF n > 0 THEN
        RAISE EXCEPTION 'cannot go below version 14: % secret(s) are sealed by data-encryption keys that only this table holds; move them to --encryption-keys first (`resolverd keys rotate --encryption-keys NEW --from-kms-key-uri URI`), then migrate down again', n;
    END IF;
    SELECT count(*) FROM audit_events WHERE mac_key_id IN (SELECT id FROM data_encryption_keys) INTO n;
    IF n > 0 THEN
        RAISE EXCEPTION 'cannot go below version 14: % audit event(s) are keyed by data-encryption keys that only this table holds, and `resolverd audit verify` could no longer check them; they leave with --audit-retention (with retention off, only by deleting them)', n;
    END IF;
END
$$;
-- +goose StatementEnd
DROP TABLE data_encryption_keys;
