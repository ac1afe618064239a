-- Conflicts between the legacy providers and rows already in ai_providers (run only when that table
-- exists): the cutover gives each legacy provider the name agents-<type> and keeps its id.
SELECT 'name_taken' AS kind,
       format('ai_providers %s is live and named %L, the name legacy provider %s (%s) will take; rename or delete it',
              a.id, a.name, p.id, p.provider) AS detail
  FROM chat_providers p
  JOIN ai_providers a ON a.name = 'agents-' || p.provider AND NOT a.deleted AND a.id <> p.id
UNION ALL
SELECT 'id_taken',
       format('ai_providers already has a row with id %s (named %L), the id legacy provider %s keeps; delete or re-id it',
              a.id, a.name, p.provider)
  FROM chat_providers p
  JOIN ai_providers a ON a.id = p.id
