-- The AI-provider layout: providers are rows with a name (several per type), central keys are
-- rows of their own (zero, one or many per provider), user keys name a provider by id, and a model
-- config names its provider by id. The legacy tables stay until the cutover moves their data.

-- +goose Up
CREATE TABLE ai_providers (
    id           uuid PRIMARY KEY,
    type         text NOT NULL,
    name         text NOT NULL,
    display_name text NOT NULL DEFAULT '',
    base_url     text NOT NULL DEFAULT '',
    enabled      boolean NOT NULL DEFAULT true,
    deleted      boolean NOT NULL DEFAULT false,
    byok_policy  text NOT NULL DEFAULT 'disabled',
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT ai_providers_type_check CHECK (type IN
        ('anthropic', 'azure', 'bedrock', 'google', 'openai', 'openai-compat', 'openrouter', 'vercel')),
    CONSTRAINT ai_providers_name_check CHECK (name ~ '^[a-z0-9]+(-[a-z0-9]+)*$' AND length(name) <= 63),
    CONSTRAINT ai_providers_base_url_check CHECK (base_url = '' OR base_url ~ '^https?://[^/?#[:space:]]+'),
    CONSTRAINT ai_providers_byok_policy_check CHECK (byok_policy IN ('disabled', 'optional', 'required')),
    -- A soft-deleted provider is also disabled.
    CONSTRAINT ai_providers_deleted_disabled CHECK (NOT (deleted AND enabled))
);
-- A name is unique among providers not deleted; a deleted provider's name can be used again.
CREATE UNIQUE INDEX ai_providers_live_name ON ai_providers (name) WHERE NOT deleted;

CREATE TABLE ai_provider_keys (
    id             uuid PRIMARY KEY,
    provider_id    uuid NOT NULL REFERENCES ai_providers (id) ON DELETE CASCADE,
    api_key        text NOT NULL CHECK (api_key <> ''),
    -- The encryption key that sealed api_key; NULL: plain text carried over from the legacy layout.
    api_key_key_id text,
    enabled        boolean NOT NULL DEFAULT true,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now()
);
-- Serves "the provider's oldest enabled central key" (docs/CONTRACT.md §2.2) from the index alone.
CREATE INDEX ai_provider_keys_oldest_enabled ON ai_provider_keys (provider_id, created_at, id) WHERE enabled;
CREATE INDEX ai_provider_keys_provider_id ON ai_provider_keys (provider_id);

CREATE TABLE user_ai_provider_keys (
    id             uuid PRIMARY KEY,
    user_id        uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    ai_provider_id uuid NOT NULL REFERENCES ai_providers (id) ON DELETE CASCADE,
    api_key        text NOT NULL CHECK (api_key <> ''),
    api_key_key_id text,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    UNIQUE (user_id, ai_provider_id)
);
CREATE INDEX user_ai_provider_keys_ai_provider_id ON user_ai_provider_keys (ai_provider_id);

-- Deleting a user (soft delete) removes their own keys, whoever writes the flag.
-- +goose StatementBegin
CREATE FUNCTION users_deleted_drop_keys() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM user_ai_provider_keys WHERE user_id = NEW.id;
    RETURN NEW;
END;
$$;
-- +goose StatementEnd
CREATE TRIGGER users_deleted_drop_keys AFTER UPDATE OF deleted ON users
    FOR EACH ROW WHEN (NEW.deleted AND NOT OLD.deleted) EXECUTE FUNCTION users_deleted_drop_keys();

-- The new layout names the provider by id. Legacy rows get it when the cutover (version 4) moves
-- the data, which then makes it required on live rows; until then legacy writers keep working.
ALTER TABLE chat_model_configs
    ADD COLUMN ai_provider_id uuid REFERENCES ai_providers (id),
    ALTER COLUMN provider DROP NOT NULL;
CREATE INDEX chat_model_configs_ai_provider_id ON chat_model_configs (ai_provider_id);

-- +goose Down
-- Configs created in the new layout name their provider only by id; give the legacy column the type.
UPDATE chat_model_configs m SET provider = p.type FROM ai_providers p
    WHERE m.provider IS NULL AND p.id = m.ai_provider_id;
UPDATE chat_model_configs SET provider = '' WHERE provider IS NULL;
ALTER TABLE chat_model_configs DROP COLUMN ai_provider_id, ALTER COLUMN provider SET NOT NULL;
DROP TRIGGER users_deleted_drop_keys ON users;
DROP FUNCTION users_deleted_drop_keys();
DROP TABLE user_ai_provider_keys;
DROP TABLE ai_provider_keys;
DROP TABLE ai_providers;
