-- Back to the legacy layout, holding everything it can hold: one provider per type (the
-- agents-<type> one, else the oldest live one) with its oldest enabled central key (else its oldest
-- key, marked not enabled), the user keys of the providers kept, and each model config's type.

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

WITH chosen AS (
    SELECT DISTINCT ON (type) *
      FROM ai_providers
     WHERE NOT deleted
     ORDER BY type, (name = 'agents-' || type) DESC, created_at, id
), first_key AS (
    SELECT DISTINCT ON (provider_id) provider_id, api_key, api_key_key_id, enabled
      FROM ai_provider_keys
     ORDER BY provider_id, enabled DESC, created_at, id
)
INSERT INTO chat_providers (id, provider, display_name, api_key, api_key_key_id, enabled, base_url,
                            central_api_key_enabled, allow_user_api_key, allow_central_api_key_fallback,
                            created_at, updated_at)
SELECT c.id, c.type, c.display_name,
       -- optional BYOK means "central key enabled with fallback" in the legacy layout, which cannot
       -- also hold a disabled key: such a key is left behind.
       CASE WHEN c.byok_policy = 'optional' AND NOT coalesce(k.enabled, true) THEN '' ELSE coalesce(k.api_key, '') END,
       CASE WHEN c.byok_policy = 'optional' AND NOT coalesce(k.enabled, true) THEN NULL ELSE k.api_key_key_id END,
       c.enabled, c.base_url,
       c.byok_policy = 'optional' OR coalesce(k.enabled, true),
       c.byok_policy <> 'disabled',
       c.byok_policy = 'optional',
       c.created_at, c.updated_at
  FROM chosen c LEFT JOIN first_key k ON k.provider_id = c.id;

INSERT INTO user_chat_provider_keys (id, user_id, chat_provider_id, api_key, api_key_key_id, created_at, updated_at)
SELECT k.id, k.user_id, k.ai_provider_id, k.api_key, k.api_key_key_id, k.created_at, k.updated_at
  FROM user_ai_provider_keys k
  JOIN chat_providers p ON p.id = k.ai_provider_id;

ALTER TABLE chat_model_configs ADD COLUMN provider text;
UPDATE chat_model_configs m SET provider = p.type FROM ai_providers p WHERE p.id = m.ai_provider_id;

-- Before the cutover the legacy tables are the truth and the new ones are empty; empty them again so
-- that the cutover can run anew.
ALTER TABLE chat_model_configs DROP CONSTRAINT chat_model_configs_live_provider;
UPDATE chat_model_configs SET ai_provider_id = NULL WHERE ai_provider_id IS NOT NULL;
DELETE FROM user_ai_provider_keys;
DELETE FROM ai_provider_keys;
DELETE FROM ai_providers;
