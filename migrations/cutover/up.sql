-- The legacy cutover (docs/CONTRACT.md §6), run after conflicts_*.sql found nothing, in the same
-- transaction. Legacy providers keep their ids and become agents-<type>; non-empty legacy keys
-- become central keys (ciphertext and encryption key id copied as they are; a NULL key id stays
-- NULL: plain legacy text); user keys move; every model config gets its ai_provider_id; then the
-- legacy tables go, so nothing can read a stale copy.

INSERT INTO ai_providers (id, type, name, display_name, base_url, enabled, deleted, byok_policy, created_at, updated_at)
SELECT id, provider, 'agents-' || provider, display_name, base_url, enabled, false,
       CASE WHEN NOT allow_user_api_key THEN 'disabled'
            WHEN central_api_key_enabled AND allow_central_api_key_fallback THEN 'optional'
            ELSE 'required' END,
       created_at, updated_at
  FROM chat_providers;

-- The key row's id is derived from the provider's, so a re-run after down gives the same ids.
INSERT INTO ai_provider_keys (id, provider_id, api_key, api_key_key_id, enabled, created_at, updated_at)
SELECT md5('resolverd legacy central key ' || id::text)::uuid, id, api_key, api_key_key_id,
       central_api_key_enabled, created_at, updated_at
  FROM chat_providers
 WHERE btrim(api_key) <> '';

INSERT INTO user_ai_provider_keys (id, user_id, ai_provider_id, api_key, api_key_key_id, created_at, updated_at)
SELECT id, user_id, chat_provider_id, api_key, api_key_key_id, created_at, updated_at
  FROM user_chat_provider_keys;

UPDATE chat_model_configs m
   SET ai_provider_id = p.id
  FROM chat_providers p
 WHERE m.ai_provider_id IS NULL AND p.provider = m.provider;

-- From now on a live config must name its provider.
ALTER TABLE chat_model_configs
    ADD CONSTRAINT chat_model_configs_live_provider CHECK (deleted OR ai_provider_id IS NOT NULL);
ALTER TABLE chat_model_configs DROP COLUMN provider;
DROP TABLE user_chat_provider_keys;
DROP TABLE chat_providers;
