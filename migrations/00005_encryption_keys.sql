-- The encryption keys that sealed stored secrets, by id. Every sealed value references its key, so
-- a key still in use cannot be dropped from the table, and `resolverd keys rotate` can tell when an
-- old key is no longer needed. Ids carried over from the legacy layout are registered here too.

-- +goose Up
CREATE TABLE encryption_keys (
    id         text PRIMARY KEY CHECK (id <> ''),
    created_at timestamptz NOT NULL DEFAULT now()
);
INSERT INTO encryption_keys (id)
SELECT api_key_key_id FROM ai_provider_keys WHERE api_key_key_id IS NOT NULL
UNION
SELECT api_key_key_id FROM user_ai_provider_keys WHERE api_key_key_id IS NOT NULL;

ALTER TABLE ai_provider_keys
    ADD CONSTRAINT ai_provider_keys_api_key_key_id_fkey FOREIGN KEY (api_key_key_id) REFERENCES encryption_keys (id);
ALTER TABLE user_ai_provider_keys
    ADD CONSTRAINT user_ai_provider_keys_api_key_key_id_fkey FOREIGN KEY (api_key_key_id) REFERENCES encryption_keys (id);
-- keys rotate looks for values not sealed by the current key.
CREATE INDEX ai_provider_keys_api_key_key_id ON ai_provider_keys (api_key_key_id);
CREATE INDEX user_ai_provider_keys_api_key_key_id ON user_ai_provider_keys (api_key_key_id);

-- +goose Down
DROP INDEX user_ai_provider_keys_api_key_key_id;
DROP INDEX ai_provider_keys_api_key_key_id;
ALTER TABLE user_ai_provider_keys DROP CONSTRAINT user_ai_provider_keys_api_key_key_id_fkey;
ALTER TABLE ai_provider_keys DROP CONSTRAINT ai_provider_keys_api_key_key_id_fkey;
DROP TABLE encryption_keys;
