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
    -- OK, or the reason of SPEC section 4 the call failed with.
    outcome     text NOT NULL,
    details     jsonb NOT NULL DEFAULT '{}'::jsonb CHECK (jsonb_typeof(details) = 'object')
);
-- Newest first, optionally for one chat, token or action (ListAuditEvents); retention by age.
CREATE INDEX audit_events_chat_id ON audit_events (chat_id, id) WHERE chat_id IS NOT NULL;
CREATE INDEX audit_events_token_id ON audit_events (token_id, id) WHERE token_id IS NOT NULL;
CREATE INDEX audit_events_action ON audit_events (action, id);
CREATE INDEX audit_events_occurred_at ON audit_events (occurred_at);

-- +goose Down
DROP TABLE audit_events;
