-- The audit trail partitioned by day (docs/CONTRACT.md §7.4): at thousands of resolutions a second
-- the trail takes hundreds of millions of rows a day, and removing old ones row by row becomes the
-- operator's biggest problem. audit_events becomes a table partitioned by range of occurred_at, one
-- partition per UTC day (audit_events_pYYYYMMDD), which serving replicas create ahead
-- (internal/db/audit_partitions.go) and retention drops whole; a DEFAULT partition
-- (audit_events_default) takes any record whose day has no partition yet, so no record is ever
-- refused for it.
--
-- It also adds the columns of summarised resolutions (serve --audit-resolutions=summary): count,
-- and first_at / last_at, set only when a record stands for more than one resolution.
--
-- Online: the existing table is not copied. It becomes the partition audit_events_legacy, for every
-- time before the midnight (UTC) that follows tomorrow, with its rows, ids and chain columns as
-- they are (so `resolverd audit verify` passes after it); new days get partitions of their own. The
-- steps below run one by one (NO TRANSACTION), so only two of them take ACCESS EXCLUSIVE on the
-- table, briefly, each with a 10 s lock_timeout (the migration fails rather than stall writers;
-- run it again):
--   1. adding the columns (defaults, no rewrite) and two NOT VALID constraints (no scan);
--   2. the swap, which renames, attaches and creates tables without reading a row.
-- The long work runs beside writers: a unique index on (id, occurred_at) built CONCURRENTLY (the
-- primary key of a partitioned table must include its partition key), and the validation of the
-- CHECK that proves every row belongs to the legacy partition's range (SHARE UPDATE EXCLUSIVE,
-- which takes no writer's lock), so attaching it reads nothing. On an empty table (a new
-- installation) the old table is simply replaced.
--
-- It fails (at the validation, changing nothing a rerun minds) if a record is dated past that
-- midnight — a clock more than a day ahead — and says how to find such records.
--
-- ids keep their sequence: the identity becomes a plain sequence (PostgreSQL 15 has no identity
-- columns on partitioned tables) that continues where the identity stopped.
--
-- Down rewrites the trail into today's unpartitioned table, every row and id kept; it refuses while
-- a summarised record exists (the older table cannot hold its count).

-- +goose NO TRANSACTION

-- +goose Up
-- +goose StatementBegin
DO $$
BEGIN
    IF (SELECT relkind FROM pg_class WHERE oid = 'audit_events'::regclass) = 'p' THEN
        RETURN;
    END IF;
    PERFORM set_config('lock_timeout', '10s', true);
    ALTER TABLE audit_events
        ADD COLUMN IF NOT EXISTS count integer NOT NULL DEFAULT 1,
        ADD COLUMN IF NOT EXISTS first_at timestamptz,
        ADD COLUMN IF NOT EXISTS last_at timestamptz;
    IF NOT EXISTS (SELECT FROM pg_constraint WHERE conrelid = 'audit_events'::regclass AND conname = 'audit_events_summary_complete') THEN
        -- A record of one resolution has count 1 and no first_at/last_at; a summary has both.
        ALTER TABLE audit_events ADD CONSTRAINT audit_events_summary_complete CHECK (
            (count = 1 AND first_at IS NULL AND last_at IS NULL)
            OR (count > 1 AND first_at IS NOT NULL AND last_at IS NOT NULL AND first_at <= last_at)
        ) NOT VALID;
    END IF;
    IF NOT EXISTS (SELECT FROM pg_constraint WHERE conrelid = 'audit_events'::regclass AND conname = 'audit_events_legacy_range') THEN
        -- At least a day ahead: until the swap, a record at or after it would be refused.
        EXECUTE format('ALTER TABLE audit_events ADD CONSTRAINT audit_events_legacy_range CHECK (occurred_at < %L) NOT VALID',
            date_trunc('day', now(), 'UTC') + interval '48 hours');
    END IF;
END
$$;
-- +goose StatementEnd

-- A run that failed here may have left an invalid index behind: build it afresh.
DROP INDEX CONCURRENTLY IF EXISTS audit_events_id_occurred_at;
CREATE UNIQUE INDEX CONCURRENTLY audit_events_id_occurred_at ON audit_events (id, occurred_at);

-- +goose StatementBegin
DO $$
DECLARE
    legacy_until text;
BEGIN
    ALTER TABLE audit_events VALIDATE CONSTRAINT audit_events_legacy_range;
EXCEPTION WHEN check_violation THEN
    SELECT (regexp_match(pg_get_constraintdef(oid), '''([^'']+)'''))[1] INTO legacy_until
        FROM pg_constraint WHERE conrelid = 'audit_events'::regclass AND conname = 'audit_events_legacy_range';
    RAISE EXCEPTION 'cannot partition the audit trail: some records are dated at or after %, the end of the partition that is to hold the existing trail (written by a clock more than a day ahead?); list them with: SELECT id, occurred_at FROM audit_events WHERE occurred_at >= ''%''; remove them (which leaves gaps in their chains) or migrate once that date has passed',
        legacy_until, legacy_until;
END
$$;
-- +goose StatementEnd

-- +goose StatementBegin
DO $$
DECLARE
    legacy_until timestamptz;
    next_id      bigint;
    start_day    timestamptz;
    d            timestamptz;
    c            record;
BEGIN
    IF (SELECT relkind FROM pg_class WHERE oid = 'audit_events'::regclass) = 'p' THEN
        RETURN;
    END IF;
    PERFORM set_config('lock_timeout', '10s', true);
    LOCK TABLE audit_events IN ACCESS EXCLUSIVE MODE;
    SELECT (regexp_match(pg_get_constraintdef(oid), '''([^'']+)'''))[1]::timestamptz INTO legacy_until
        FROM pg_constraint WHERE conrelid = 'audit_events'::regclass AND conname = 'audit_events_legacy_range';
    next_id := nextval(pg_get_serial_sequence('audit_events', 'id'));

    ALTER TABLE audit_events RENAME TO audit_events_legacy;
    ALTER TABLE audit_events_legacy ALTER COLUMN id DROP IDENTITY;
    ALTER INDEX audit_events_chat_id RENAME TO audit_events_legacy_chat_id;
    ALTER INDEX audit_events_token_id RENAME TO audit_events_legacy_token_id;
    ALTER INDEX audit_events_admin_action RENAME TO audit_events_legacy_admin_action;
    ALTER INDEX audit_events_occurred_at RENAME TO audit_events_legacy_occurred_at;
    ALTER TABLE audit_events_legacy DROP CONSTRAINT audit_events_pkey;
    ALTER TABLE audit_events_legacy ADD CONSTRAINT audit_events_legacy_pkey PRIMARY KEY USING INDEX audit_events_id_occurred_at;

    CREATE SEQUENCE audit_events_id_seq AS bigint;
    PERFORM setval('audit_events_id_seq', next_id, false);
    -- Every column of the old table (with any a later release added), its defaults and CHECKs.
    CREATE TABLE audit_events (LIKE audit_events_legacy INCLUDING DEFAULTS INCLUDING CONSTRAINTS, PRIMARY KEY (id, occurred_at))
        PARTITION BY RANGE (occurred_at);
    ALTER TABLE audit_events DROP CONSTRAINT audit_events_legacy_range;
    ALTER TABLE audit_events ALTER COLUMN id SET DEFAULT nextval('audit_events_id_seq');
    ALTER SEQUENCE audit_events_id_seq OWNED BY audit_events.id;
    -- A partition may not hold a NOT VALID CHECK the parent holds validated.
    FOR c IN SELECT conname, pg_get_constraintdef(oid) AS def FROM pg_constraint
             WHERE conrelid = 'audit_events_legacy'::regclass AND contype = 'c' AND NOT convalidated LOOP
        EXECUTE format('ALTER TABLE audit_events DROP CONSTRAINT %I', c.conname);
        EXECUTE format('ALTER TABLE audit_events ADD CONSTRAINT %I %s', c.conname, c.def);
    END LOOP;
    -- The indexes of migrations 6 (ListAuditEvents newest first, by chat, token or admin action;
    -- occurred_at for audit verify --since), now one per partition.
    CREATE INDEX audit_events_chat_id ON audit_events (chat_id, id) WHERE chat_id IS NOT NULL;
    CREATE INDEX audit_events_token_id ON audit_events (token_id, id) WHERE token_id IS NOT NULL;
    CREATE INDEX audit_events_admin_action ON audit_events (action, id) WHERE action <> 'ResolveModel';
    CREATE INDEX audit_events_occurred_at ON audit_events USING brin (occurred_at);

    IF EXISTS (SELECT FROM audit_events_legacy) THEN
        -- The validated CHECK implies the partition's range: attaching reads no row.
        EXECUTE format('ALTER TABLE audit_events ATTACH PARTITION audit_events_legacy FOR VALUES FROM (MINVALUE) TO (%L)', legacy_until);
        ALTER TABLE audit_events_legacy DROP CONSTRAINT audit_events_legacy_range;
        start_day := legacy_until;
    ELSE
        DROP TABLE audit_events_legacy;
        start_day := date_trunc('day', now(), 'UTC');
    END IF;
    CREATE TABLE audit_events_default PARTITION OF audit_events DEFAULT;
    -- The first days; the serving replicas keep a week ahead. UTC days, in hours: adding '1 day' to
    -- a timestamptz counts a calendar day of the session's time zone, 23 or 25 hours across a
    -- daylight-saving change.
    FOR i IN 0..7 LOOP
        d := start_day + i * interval '24 hours';
        EXECUTE format('CREATE TABLE %I PARTITION OF audit_events FOR VALUES FROM (%L) TO (%L)',
            'audit_events_p' || to_char(d AT TIME ZONE 'UTC', 'YYYYMMDD'), d, d + interval '24 hours');
    END LOOP;
END
$$;
-- +goose StatementEnd

-- +goose Down
-- +goose StatementBegin
DO $$
DECLARE
    summaries bigint;
    next_id   bigint;
    cols      text;
    c         record;
BEGIN
    PERFORM set_config('lock_timeout', '10s', true);
    LOCK TABLE audit_events IN ACCESS EXCLUSIVE MODE;
    SELECT count(*) INTO summaries FROM audit_events WHERE count <> 1;
    IF summaries > 0 THEN
        RAISE EXCEPTION 'cannot go below version 16: % audit record(s) summarise several resolutions (serve --audit-resolutions=summary), which older releases cannot hold; they leave with --audit-retention', summaries;
    END IF;
    next_id := nextval('audit_events_id_seq');

    CREATE TABLE audit_events_unpartitioned (LIKE audit_events INCLUDING DEFAULTS INCLUDING CONSTRAINTS);
    -- Dropping the columns drops audit_events_summary_complete with them.
    ALTER TABLE audit_events_unpartitioned DROP COLUMN count, DROP COLUMN first_at, DROP COLUMN last_at,
        ALTER COLUMN id DROP DEFAULT;
    -- NOT VALID CHECKs come back NOT VALID, after the rows (which they never checked).
    FOR c IN SELECT conname FROM pg_constraint WHERE conrelid = 'audit_events'::regclass AND contype = 'c' AND NOT convalidated
             AND conname <> 'audit_events_summary_complete' LOOP
        EXECUTE format('ALTER TABLE audit_events_unpartitioned DROP CONSTRAINT %I', c.conname);
    END LOOP;
    SELECT string_agg(quote_ident(attname), ', ' ORDER BY attnum) INTO cols FROM pg_attribute
        WHERE attrelid = 'audit_events_unpartitioned'::regclass AND attnum > 0 AND NOT attisdropped;
    EXECUTE format('INSERT INTO audit_events_unpartitioned (%s) SELECT %s FROM audit_events ORDER BY id', cols, cols);
    FOR c IN SELECT conname, pg_get_constraintdef(oid) AS def FROM pg_constraint
             WHERE conrelid = 'audit_events'::regclass AND contype = 'c' AND NOT convalidated
             AND conname <> 'audit_events_summary_complete' LOOP
        EXECUTE format('ALTER TABLE audit_events_unpartitioned ADD CONSTRAINT %I %s', c.conname, c.def);
    END LOOP;

    DROP TABLE audit_events;
    ALTER TABLE audit_events_unpartitioned RENAME TO audit_events;
    EXECUTE format('ALTER TABLE audit_events ALTER COLUMN id ADD GENERATED ALWAYS AS IDENTITY (START WITH %s)', next_id);
    ALTER TABLE audit_events ADD CONSTRAINT audit_events_pkey PRIMARY KEY (id);
    CREATE INDEX audit_events_chat_id ON audit_events (chat_id, id) WHERE chat_id IS NOT NULL;
    CREATE INDEX audit_events_token_id ON audit_events (token_id, id) WHERE token_id IS NOT NULL;
    CREATE INDEX audit_events_admin_action ON audit_events (action, id) WHERE action <> 'ResolveModel';
    CREATE INDEX audit_events_occurred_at ON audit_events USING brin (occurred_at);
END
$$;
-- +goose StatementEnd
