-- Every committed change to a table resolverd caches is published on the channel
-- resolverd_changes (LISTEN/NOTIFY), whoever made it: AdminService, psql, another replica, a
-- migration. PostgreSQL delivers a notification only when its transaction commits, and never one
-- of a rolled-back transaction. The payload names the cache entries to drop, never a secret.

-- +goose Up
-- +goose StatementBegin
CREATE FUNCTION resolverd_notify_change() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    r record;
    payload jsonb;
BEGIN
    IF TG_OP = 'TRUNCATE' THEN
        PERFORM pg_notify('resolverd_changes', jsonb_build_object('table', TG_TABLE_NAME, 'flush', true)::text);
        RETURN NULL;
    END IF;
    -- An update can move a row between cache entries (a key to another provider): name both sides.
    FOR r IN SELECT * FROM (SELECT 1 AS side, to_jsonb(OLD) AS row WHERE TG_OP <> 'INSERT'
                            UNION ALL SELECT 2, to_jsonb(NEW) WHERE TG_OP <> 'DELETE') rows LOOP
        payload := jsonb_build_object('table', TG_TABLE_NAME, 'id', r.row ->> 'id');
        CASE TG_TABLE_NAME
        WHEN 'ai_provider_keys' THEN
            payload := payload || jsonb_build_object('provider_id', r.row ->> 'provider_id');
        WHEN 'user_ai_provider_keys' THEN
            payload := payload || jsonb_build_object('user_id', r.row ->> 'user_id', 'provider_id', r.row ->> 'ai_provider_id');
        WHEN 'api_tokens' THEN
            -- to_jsonb shows a bytea as \x<hex>.
            payload := payload || jsonb_build_object('token_hash', substr(r.row ->> 'token_hash', 3));
        ELSE
        END CASE;
        IF TG_OP = 'UPDATE' AND r.side = 1 AND TG_TABLE_NAME NOT IN ('ai_provider_keys', 'user_ai_provider_keys') THEN
            CONTINUE; -- same id on both sides: one notification is enough
        END IF;
        PERFORM pg_notify('resolverd_changes', payload::text);
    END LOOP;
    RETURN NULL;
END;
$$;
-- +goose StatementEnd

CREATE TRIGGER ai_providers_notify AFTER INSERT OR UPDATE OR DELETE ON ai_providers
    FOR EACH ROW EXECUTE FUNCTION resolverd_notify_change();
CREATE TRIGGER ai_provider_keys_notify AFTER INSERT OR UPDATE OR DELETE ON ai_provider_keys
    FOR EACH ROW EXECUTE FUNCTION resolverd_notify_change();
CREATE TRIGGER user_ai_provider_keys_notify AFTER INSERT OR UPDATE OR DELETE ON user_ai_provider_keys
    FOR EACH ROW EXECUTE FUNCTION resolverd_notify_change();
CREATE TRIGGER chat_model_configs_notify AFTER INSERT OR UPDATE OR DELETE ON chat_model_configs
    FOR EACH ROW EXECUTE FUNCTION resolverd_notify_change();
CREATE TRIGGER chats_notify AFTER INSERT OR UPDATE OR DELETE ON chats
    FOR EACH ROW EXECUTE FUNCTION resolverd_notify_change();
CREATE TRIGGER api_tokens_notify AFTER INSERT OR UPDATE OR DELETE ON api_tokens
    FOR EACH ROW EXECUTE FUNCTION resolverd_notify_change();

CREATE TRIGGER ai_providers_notify_truncate AFTER TRUNCATE ON ai_providers
    FOR EACH STATEMENT EXECUTE FUNCTION resolverd_notify_change();
CREATE TRIGGER ai_provider_keys_notify_truncate AFTER TRUNCATE ON ai_provider_keys
    FOR EACH STATEMENT EXECUTE FUNCTION resolverd_notify_change();
CREATE TRIGGER user_ai_provider_keys_notify_truncate AFTER TRUNCATE ON user_ai_provider_keys
    FOR EACH STATEMENT EXECUTE FUNCTION resolverd_notify_change();
CREATE TRIGGER chat_model_configs_notify_truncate AFTER TRUNCATE ON chat_model_configs
    FOR EACH STATEMENT EXECUTE FUNCTION resolverd_notify_change();
CREATE TRIGGER chats_notify_truncate AFTER TRUNCATE ON chats
    FOR EACH STATEMENT EXECUTE FUNCTION resolverd_notify_change();
CREATE TRIGGER api_tokens_notify_truncate AFTER TRUNCATE ON api_tokens
    FOR EACH STATEMENT EXECUTE FUNCTION resolverd_notify_change();

-- +goose Down
DROP TRIGGER api_tokens_notify_truncate ON api_tokens;
DROP TRIGGER chats_notify_truncate ON chats;
DROP TRIGGER chat_model_configs_notify_truncate ON chat_model_configs;
DROP TRIGGER user_ai_provider_keys_notify_truncate ON user_ai_provider_keys;
DROP TRIGGER ai_provider_keys_notify_truncate ON ai_provider_keys;
DROP TRIGGER ai_providers_notify_truncate ON ai_providers;
DROP TRIGGER api_tokens_notify ON api_tokens;
DROP TRIGGER chats_notify ON chats;
DROP TRIGGER chat_model_configs_notify ON chat_model_configs;
DROP TRIGGER user_ai_provider_keys_notify ON user_ai_provider_keys;
DROP TRIGGER ai_provider_keys_notify ON ai_provider_keys;
DROP TRIGGER ai_providers_notify ON ai_providers;
DROP FUNCTION resolverd_notify_change();
