-- Workload identities (docs/CONTRACT.md §3.1): a subject that a caller proves with a credential
-- resolverd verifies (the `sub` of a JWT signed by the configured issuer, a client certificate's
-- URI SAN or "cn:<common name>"), bound to the scopes it may use. Bearer tokens are unchanged.
-- audit_events.subject names the identity behind a call, as token_id names the token.
--
-- Changes are published on resolverd_changes like the cached tables of migration 7, so every
-- replica honours an update or a deletion within a second (docs/CONTRACT.md §5.1). The table has
-- its own trigger function, so this migration does not replace resolverd_notify_change().

-- +goose Up
CREATE TABLE workload_identities (
    -- The same rules as AdminService's validation: 1 to 1024 bytes, no control characters, no
    -- surrounding white space.
    subject     text PRIMARY KEY CONSTRAINT workload_identities_subject_check
                CHECK (subject <> '' AND octet_length(subject) <= 1024 AND subject !~ '[[:cntrl:]]' AND subject = btrim(subject)),
    scopes      text[] NOT NULL CONSTRAINT workload_identities_scopes_check CHECK (cardinality(scopes) > 0),
    description text NOT NULL DEFAULT '' CONSTRAINT workload_identities_description_check CHECK (length(description) <= 200),
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

-- The workload identity that made the call; NULL for bearer tokens and the command line.
ALTER TABLE audit_events ADD COLUMN subject text;

-- +goose StatementBegin
CREATE FUNCTION resolverd_notify_identity_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'TRUNCATE' THEN
        PERFORM pg_notify('resolverd_changes', jsonb_build_object('table', TG_TABLE_NAME, 'flush', true)::text);
        RETURN NULL;
    END IF;
    -- Both sides of an update that renames the subject; once when it keeps it.
    IF TG_OP <> 'INSERT' THEN
        PERFORM pg_notify('resolverd_changes', jsonb_build_object('table', TG_TABLE_NAME, 'subject', OLD.subject)::text);
    END IF;
    IF TG_OP = 'INSERT' OR (TG_OP = 'UPDATE' AND NEW.subject IS DISTINCT FROM OLD.subject) THEN
        PERFORM pg_notify('resolverd_changes', jsonb_build_object('table', TG_TABLE_NAME, 'subject', NEW.subject)::text);
    END IF;
    RETURN NULL;
END;
$$;
-- +goose StatementEnd

CREATE TRIGGER workload_identities_notify AFTER INSERT OR UPDATE OR DELETE ON workload_identities
    FOR EACH ROW EXECUTE FUNCTION resolverd_notify_identity_change();
CREATE TRIGGER workload_identities_notify_truncate AFTER TRUNCATE ON workload_identities
    FOR EACH STATEMENT EXECUTE FUNCTION resolverd_notify_identity_change();

-- +goose Down
DROP TRIGGER workload_identities_notify_truncate ON workload_identities;
DROP TRIGGER workload_identities_notify ON workload_identities;
DROP FUNCTION resolverd_notify_identity_change();
ALTER TABLE audit_events DROP COLUMN subject;
DROP TABLE workload_identities;
