-- Conflicts of the legacy cutover that the legacy tables alone reveal. One row per offending row:
-- (kind, detail). Shared by the migration (which refuses to run while any exists) and by
-- `resolverd migrate preflight` (which lists them), so the two can never disagree.
SELECT 'model_config_without_provider' AS kind,
       format('chat_model_configs %s (model %L) names provider type %L, which has no chat_providers row; add that provider or point the config at an existing type',
              m.id, m.model, m.provider) AS detail
  FROM chat_model_configs m
 -- to_jsonb reads ai_provider_id where it exists (version 2 on) and NULL on a legacy database.
 WHERE to_jsonb(m) ->> 'ai_provider_id' IS NULL
   AND NOT EXISTS (SELECT 1 FROM chat_providers p WHERE p.provider = m.provider)
UNION ALL
SELECT 'user_key_of_deleted_user',
       format('user_chat_provider_keys %s belongs to deleted user %s (%L): deleted users keep no keys; delete the key or undelete the user',
              k.id, u.id, u.username)
  FROM user_chat_provider_keys k JOIN users u ON u.id = k.user_id
 WHERE u.deleted
UNION ALL
SELECT 'empty_user_key',
       format('user_chat_provider_keys %s (user %s) has an empty api_key: delete it', k.id, k.user_id)
  FROM user_chat_provider_keys k
 WHERE btrim(k.api_key) = ''
UNION ALL
SELECT 'invalid_base_url',
       format('chat_providers %s (%s) has base_url %L, which is not empty or an absolute http(s) URL; fix it',
              p.id, p.provider, p.base_url)
  FROM chat_providers p
 WHERE p.base_url <> '' AND p.base_url !~ '^https?://[^/?#[:space:]]+'
