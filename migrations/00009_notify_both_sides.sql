-- Change notifications name both sides of an update in every table, not only in the key tables:
-- an UPDATE that changes the column a cache entry is found by (api_tokens.token_hash when a token
-- is reissued in place, chats.id, chat_model_configs.id) left the old entry cached — the old token
-- kept authenticating, the old chat kept resolving — until the TTL. One notification is still sent
-- when both sides name the same entry.

-- +goose Up
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION resolverd_notify_change() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    r record;
    payload jsonb;
    previous jsonb;
BEGIN
    IF TG_OP = 'TRUNCATE' THEN
        PERFORM pg_notify('resolverd_changes', jsonb_build_object('table', TG_TABLE_NAME, 'flush', true)::text);
        RETURN NULL;
    END IF;
    -- An update can move a row between cache entries (a key to another provider, a token to
    -- another hash, a chat to another id): name both sides, once when they are the same entry.
    FOR r IN SELECT * FROM (SELECT 1 AS side, to_jsonb(OLD) AS row WHERE TG_OP <> 'INSERT'
                            UNION ALL SELECT 2, to_jsonb(NEW) WHERE TG_OP <> 'DELETE') rows ORDER BY side LOOP
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
        IF payload IS DISTINCT FROM previous THEN
            PERFORM pg_notify('resolverd_changes', payload::text);
        END IF;
        previous := payload;
    END LOOP;
    RETURN NULL;
END;
$$;
-- +goose StatementEnd

-- +goose Down
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION resolverd_notify_change() RETURNS trigger LANGUAGE plpgsql AS $$
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
