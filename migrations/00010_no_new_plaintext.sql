-- No new plain secret (docs/CONTRACT.md §7.1): every key row must name the encryption key that
-- sealed its value. The CHECKs are NOT VALID, so the legacy plain rows the cutover (version 4)
-- carried over stay readable; PostgreSQL enforces them on every INSERT and UPDATE from now on, and
-- `resolverd keys rotate` seals the legacy rows and then validates them.
--
-- From this version on resolverd seals values bound to their row (the "v2:" format), which
-- releases before it cannot open. Going down therefore refuses while such values exist: re-seal
-- them first with `resolverd keys rotate --format 1`, every replica stopped.

-- +goose Up
ALTER TABLE ai_provider_keys
    ADD CONSTRAINT ai_provider_keys_api_key_sealed CHECK (api_key_key_id IS NOT NULL) NOT VALID;
ALTER TABLE user_ai_provider_keys
    ADD CONSTRAINT user_ai_provider_keys_api_key_sealed CHECK (api_key_key_id IS NOT NULL) NOT VALID;

-- +goose Down
-- +goose StatementBegin
DO $$
DECLARE
    central bigint;
    own     bigint;
BEGIN
    SELECT count(*) INTO central FROM ai_provider_keys WHERE api_key_key_id IS NOT NULL AND api_key LIKE 'v2:%';
    SELECT count(*) INTO own FROM user_ai_provider_keys WHERE api_key_key_id IS NOT NULL AND api_key LIKE 'v2:%';
    IF central + own > 0 THEN
        RAISE EXCEPTION 'cannot go below version 10: % central and % user key(s) are sealed bound to their row (format 2), which older releases cannot open; stop every replica, run `resolverd keys rotate --format 1`, then migrate down again', central, own;
    END IF;
END
$$;
-- +goose StatementEnd
ALTER TABLE user_ai_provider_keys DROP CONSTRAINT user_ai_provider_keys_api_key_sealed;
ALTER TABLE ai_provider_keys DROP CONSTRAINT ai_provider_keys_api_key_sealed;
