-- The audit trail: every resolution and every admin change, who made it and what came of it,
-- never a secret (keys appear by id and fingerprint). Resolutions arrive in batches from each
-- replica's writer; admin changes are written in the transaction of the change itself.

-- +goose Up
CREATE TABLE audit_events (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    occurred_at timestamptz NOT NULL,
    -- ResolveModel, or the AdminService method of the change (CreateProvider, RotateProviderKey, ...).
    action      text NOT NULL CHECK (action <> ''),
    -- The caller's token; NULL for changes made with the command line.
    token_id    uuid,
    chat_id     uuid,
    -- OK, or the reason of docs/CONTRACT.md §4 the call failed with.
    outcome     text NOT NULL,
    -- A resolution's record, in columns: every resolution writes a row, and typed columns cost
    -- PostgreSQL far less to take than a JSON document it must parse.
    purpose                   text,
    request_id                text,
    requested_model_config_id uuid,
    model_config_id           uuid,
    provider_id               uuid,
    credential_source         text,
    key_id                    uuid,
    fingerprint               text,
    fallback                  boolean,
    fallback_reason           text,
    -- An admin change's target ids, and the fingerprint of a secret it set.
    details     jsonb CHECK (details IS NULL OR jsonb_typeof(details) = 'object')
);
-- Newest first, optionally for one chat, token or action (ListAuditEvents); retention by age.
-- Every resolution inserts a row, so each index is chosen for its insert cost too: resolutions
-- are the bulk of the table and are found by scanning it newest first, so the action index holds
-- only admin changes; occurred_at grows with the table, which a BRIN index serves at a fraction
-- of a B-tree's cost.
CREATE INDEX audit_events_chat_id ON audit_events (chat_id, id) WHERE chat_id IS NOT NULL;
CREATE INDEX audit_events_token_id ON audit_events (token_id, id) WHERE token_id IS NOT NULL;
CREATE INDEX audit_events_admin_action ON audit_events (action, id) WHERE action <> 'ResolveModel';
CREATE INDEX audit_events_occurred_at ON audit_events USING brin (occurred_at);

-- +goose Down
DROP TABLE audit_events;
