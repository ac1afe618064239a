-- Callers' bearer tokens (stored only as a SHA-256 hash) and the deployment's settings.

-- +goose Up
CREATE TABLE api_tokens (
    id         uuid PRIMARY KEY,
    name       text NOT NULL CHECK (name <> '' AND length(name) <= 200),
    token_hash bytea NOT NULL UNIQUE CHECK (length(token_hash) = 32),
    scopes     text[] NOT NULL,
    expires_at timestamptz,
    revoked_at timestamptz,
    created_at timestamptz NOT NULL DEFAULT now()
);

-- One row: the key of the credential fingerprints (HMAC-SHA256). It lives in the database so that
-- every replica and every restart computes the same fingerprint for a secret. gen_random_uuid()
-- draws from PostgreSQL's strong random source; two of them give 244 random bits.
CREATE TABLE resolver_settings (
    singleton       boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    fingerprint_key bytea NOT NULL CHECK (length(fingerprint_key) = 32)
);
INSERT INTO resolver_settings (fingerprint_key)
VALUES (decode(replace(gen_random_uuid()::text || gen_random_uuid()::text, '-', ''), 'hex'));

-- +goose Down
DROP TABLE resolver_settings;
DROP TABLE api_tokens;
