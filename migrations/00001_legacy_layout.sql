-- The legacy layout (docs/CONTRACT.md §1): providers keyed by type, keys on the provider row, and model
-- configs naming their provider by type string. Existing deployments start here.

-- +goose Up
CREATE TABLE users (
    id         uuid PRIMARY KEY,
    username   text NOT NULL UNIQUE,
    deleted    boolean NOT NULL DEFAULT false,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE chat_providers (
    id                             uuid PRIMARY KEY,
    provider                       text NOT NULL UNIQUE,
    display_name                   text NOT NULL DEFAULT '',
    api_key                        text NOT NULL DEFAULT '',
    api_key_key_id                 text,
    enabled                        boolean NOT NULL DEFAULT true,
    base_url                       text NOT NULL DEFAULT '',
    central_api_key_enabled        boolean NOT NULL DEFAULT true,
    allow_user_api_key             boolean NOT NULL DEFAULT false,
    allow_central_api_key_fallback boolean NOT NULL DEFAULT false,
    created_at                     timestamptz NOT NULL DEFAULT now(),
    updated_at                     timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT chat_providers_provider_check CHECK (provider IN
        ('anthropic', 'azure', 'bedrock', 'google', 'openai', 'openai-compat', 'openrouter', 'vercel'))
);

CREATE TABLE user_chat_provider_keys (
    id               uuid PRIMARY KEY,
    user_id          uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    chat_provider_id uuid NOT NULL REFERENCES chat_providers (id) ON DELETE CASCADE,
    api_key          text NOT NULL,
    api_key_key_id   text,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    UNIQUE (user_id, chat_provider_id)
);

CREATE TABLE chat_model_configs (
    id                    uuid PRIMARY KEY,
    provider              text NOT NULL,
    model                 text NOT NULL,
    display_name          text NOT NULL DEFAULT '',
    enabled               boolean NOT NULL DEFAULT true,
    is_default            boolean NOT NULL DEFAULT false,
    deleted               boolean NOT NULL DEFAULT false,
    context_limit         integer NOT NULL DEFAULT 128000 CHECK (context_limit > 0),
    compression_threshold integer NOT NULL DEFAULT 70 CHECK (compression_threshold BETWEEN 0 AND 100),
    options               jsonb NOT NULL DEFAULT '{}'::jsonb CHECK (jsonb_typeof(options) = 'object'),
    created_at            timestamptz NOT NULL DEFAULT now(),
    updated_at            timestamptz NOT NULL DEFAULT now()
);

-- At most one default among the configs not deleted.
CREATE UNIQUE INDEX chat_model_configs_one_default ON chat_model_configs ((true)) WHERE is_default AND NOT deleted;

CREATE TABLE chats (
    id                   uuid PRIMARY KEY,
    owner_id             uuid NOT NULL REFERENCES users (id),
    last_model_config_id uuid REFERENCES chat_model_configs (id),
    created_at           timestamptz NOT NULL DEFAULT now(),
    updated_at           timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX chats_owner_id ON chats (owner_id);

-- +goose Down
DROP TABLE chats;
DROP TABLE chat_model_configs;
DROP TABLE user_chat_provider_keys;
DROP TABLE chat_providers;
DROP TABLE users;
