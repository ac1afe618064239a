-- Key pools (docs/CONTRACT.md §2.2, §17): a provider chooses among its enabled central keys by a
-- policy, and workers report what happened when they used a key, so that a key the provider rate
-- limits, has run out of quota for, or refuses is skipped by every replica.
--
-- ai_providers.central_key_policy: 'oldest' (the oldest available key by created_at, then id: the
-- rule before this migration, and the default) or 'round_robin' (successive resolutions take the
-- available keys in turn).
--
-- Key health lives on the key rows themselves, so the change-notification triggers of migrations 7
-- and 9 publish a report (an UPDATE of the row, naming its provider, and for a user's key its user)
-- like any other change of the row: every replica drops the entry within a second. No trigger
-- changes here.
--
--   cooling_until       a central key reported RATE_LIMITED or QUOTA_EXHAUSTED is skipped until then
--                       (a time in the past means it cooled down: nothing to clear).
--   suspended_at        a central key reported UNAUTHORIZED is skipped until an admin enables it
--                       again or rotates; a user's key is marked invalid until the user puts a new one.
--   suspended_reason    the outcome that suspended it ('UNAUTHORIZED'); set exactly with suspended_at.
--   last_report_outcome the last reported outcome (CredentialOutcome without its prefix) and
--   last_report_at      when it came; set together.
--
-- A report never touches updated_at: that is when an admin last changed the row.

-- +goose Up
ALTER TABLE ai_providers ADD COLUMN central_key_policy text NOT NULL DEFAULT 'oldest'
    CONSTRAINT ai_providers_central_key_policy_check CHECK (central_key_policy IN ('oldest', 'round_robin'));

ALTER TABLE ai_provider_keys
    ADD COLUMN cooling_until timestamptz,
    ADD COLUMN suspended_at timestamptz,
    ADD COLUMN suspended_reason text,
    ADD COLUMN last_report_outcome text,
    ADD COLUMN last_report_at timestamptz,
    ADD CONSTRAINT ai_provider_keys_suspended_check CHECK ((suspended_at IS NULL) = (suspended_reason IS NULL)),
    ADD CONSTRAINT ai_provider_keys_last_report_check CHECK ((last_report_outcome IS NULL) = (last_report_at IS NULL)
        AND (last_report_outcome IS NULL OR last_report_outcome IN ('RATE_LIMITED', 'QUOTA_EXHAUSTED', 'UNAUTHORIZED', 'OK')));

ALTER TABLE user_ai_provider_keys
    ADD COLUMN suspended_at timestamptz,
    ADD COLUMN suspended_reason text,
    ADD COLUMN last_report_outcome text,
    ADD COLUMN last_report_at timestamptz,
    ADD CONSTRAINT user_ai_provider_keys_suspended_check CHECK ((suspended_at IS NULL) = (suspended_reason IS NULL)),
    ADD CONSTRAINT user_ai_provider_keys_last_report_check CHECK ((last_report_outcome IS NULL) = (last_report_at IS NULL)
        AND (last_report_outcome IS NULL OR last_report_outcome IN ('RATE_LIMITED', 'QUOTA_EXHAUSTED', 'UNAUTHORIZED', 'OK')));

-- +goose Down
ALTER TABLE user_ai_provider_keys
    DROP CONSTRAINT user_ai_provider_keys_last_report_check,
    DROP CONSTRAINT user_ai_provider_keys_suspended_check,
    DROP COLUMN last_report_at,
    DROP COLUMN last_report_outcome,
    DROP COLUMN suspended_reason,
    DROP COLUMN suspended_at;
ALTER TABLE ai_provider_keys
    DROP CONSTRAINT ai_provider_keys_last_report_check,
    DROP CONSTRAINT ai_provider_keys_suspended_check,
    DROP COLUMN last_report_at,
    DROP COLUMN last_report_outcome,
    DROP COLUMN suspended_reason,
    DROP COLUMN suspended_at,
    DROP COLUMN cooling_until;
ALTER TABLE ai_providers DROP COLUMN central_key_policy;
