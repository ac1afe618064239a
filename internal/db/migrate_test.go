package db_test

import (
	"context"
	"fmt"
	"io/fs"
	"slices"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/pressly/goose/v3"

	"github.com/resolverd/resolverd/internal/db"
	"github.com/resolverd/resolverd/internal/pgtest"
	"github.com/resolverd/resolverd/migrations"
)

// schemaOf renders the public schema: columns, constraints, indexes, triggers and functions.
func schemaOf(t *testing.T, pool *pgxpool.Pool) string {
	t.Helper()
	queries := []string{
		`SELECT table_name || '.' || column_name || ' ' || data_type || ' null=' || is_nullable || ' default=' || coalesce(column_default, '')
		   FROM information_schema.columns WHERE table_schema = 'public' AND table_name <> 'goose_db_version'`,
		`SELECT conrelid::regclass || ' ' || conname || ' ' || pg_get_constraintdef(oid) || ' valid=' || convalidated
		   FROM pg_constraint WHERE connamespace = 'public'::regnamespace AND conrelid::regclass::text <> 'goose_db_version'`,
		`SELECT indexdef FROM pg_indexes WHERE schemaname = 'public' AND tablename <> 'goose_db_version'`,
		`SELECT tgrelid::regclass || ' ' || pg_get_triggerdef(oid) FROM pg_trigger WHERE NOT tgisinternal`,
		`SELECT proname || ' ' || md5(prosrc) FROM pg_proc WHERE pronamespace = 'public'::regnamespace`,
	}
	var parts []string
	for _, q := range queries {
		rows, err := pool.Query(context.Background(), q+" ORDER BY 1")
		if err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		lines, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			t.Fatal(err)
		}
		parts = append(parts, lines...)
	}
	return strings.Join(parts, "\n")
}

func migrator(t *testing.T, pool *pgxpool.Pool) *db.Migrator {
	t.Helper()
	m, err := db.NewMigrator(pool, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

// TestEveryMigrationGoesDownAndUpAgain walks the history one step at a time and checks that each
// down migration restores exactly the schema of the version below it.
func TestEveryMigrationGoesDownAndUpAgain(t *testing.T) {
	ctx := context.Background()
	pool := pgtest.Connect(t, pgtest.NewEmptyDatabase(t))
	m := migrator(t, pool)
	latest := db.LatestVersion()
	if latest < 3 {
		t.Fatalf("latest version %d", latest)
	}
	// The versions that exist: numbers are handed out ahead of merging, so the history may have gaps.
	versions := []int64{0, db.CutoverVersion}
	entries, err := fs.ReadDir(migrations.FS, ".")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if v, err := goose.NumericComponent(e.Name()); err == nil {
			versions = append(versions, v)
		}
	}
	slices.Sort(versions)
	if versions[len(versions)-1] != latest {
		t.Fatalf("the newest migration file is version %d, LatestVersion %d", versions[len(versions)-1], latest)
	}
	schemas := map[int64]string{0: schemaOf(t, pool)}
	for _, v := range versions[1:] {
		if _, err := m.UpTo(ctx, v); err != nil {
			t.Fatalf("up to %d: %v", v, err)
		}
		if got, _ := db.SchemaVersion(ctx, pool); got != v {
			t.Fatalf("SchemaVersion = %d after up to %d", got, v)
		}
		schemas[v] = schemaOf(t, pool)
	}
	for i := len(versions) - 2; i >= 0; i-- {
		v := versions[i]
		if _, err := m.DownTo(ctx, v); err != nil {
			t.Fatalf("down to %d: %v", v, err)
		}
		if got := schemaOf(t, pool); got != schemas[v] {
			t.Fatalf("down to %d left a different schema:\n--- after down\n%s\n--- after up\n%s", v, got, schemas[v])
		}
	}
	if _, err := m.UpTo(ctx, 0); err != nil {
		t.Fatal(err)
	}
	if got := schemaOf(t, pool); got != schemas[latest] {
		t.Fatal("up after a full down gives a different schema")
	}
}

func TestSchemaVersionOfAnEmptyDatabaseIsZeroAndWritesNothing(t *testing.T) {
	ctx := context.Background()
	pool := pgtest.Connect(t, pgtest.NewEmptyDatabase(t))
	v, err := db.SchemaVersion(ctx, pool)
	if err != nil || v != 0 {
		t.Fatalf("SchemaVersion = %d, %v", v, err)
	}
	var tables int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM pg_tables WHERE schemaname = 'public'`).Scan(&tables); err != nil || tables != 0 {
		t.Fatalf("reading the version created %d tables (%v)", tables, err)
	}
}

// TestLegacyRowsSurviveTheAIProviderMigration: version 2 must apply on a legacy database that has
// rows (its new check is NOT VALID until the cutover) and go back down with them intact.
func TestLegacyRowsSurviveTheAIProviderMigration(t *testing.T) {
	ctx := context.Background()
	pool := pgtest.Connect(t, pgtest.NewEmptyDatabase(t))
	m := migrator(t, pool)
	if _, err := m.UpTo(ctx, 1); err != nil {
		t.Fatal(err)
	}
	exec(t, pool, `INSERT INTO chat_providers (id, provider, api_key) VALUES ('00000000-0000-4000-8000-000000000001', 'openai', 'sk-legacy')`)
	exec(t, pool, `INSERT INTO chat_model_configs (id, provider, model) VALUES ('00000000-0000-4000-8000-000000000002', 'openai', 'gpt-4o')`)
	before := rowsOf(t, pool, "chat_model_configs")
	if _, err := m.UpTo(ctx, 2); err != nil {
		t.Fatalf("version 2 on a legacy database with rows: %v", err)
	}
	if _, err := m.DownTo(ctx, 1); err != nil {
		t.Fatal(err)
	}
	if after := rowsOf(t, pool, "chat_model_configs"); after != before {
		t.Fatalf("legacy rows changed across up/down:\n%s\n%s", before, after)
	}
}

func exec(t *testing.T, pool *pgxpool.Pool, sql string, args ...any) {
	t.Helper()
	if _, err := pool.Exec(context.Background(), sql, args...); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

func rowsOf(t *testing.T, pool *pgxpool.Pool, table string) string {
	t.Helper()
	rows, err := pool.Query(context.Background(), fmt.Sprintf(`SELECT to_jsonb(x)::text FROM %s x ORDER BY 1`, table))
	if err != nil {
		t.Fatal(err)
	}
	lines, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	return strings.Join(lines, "\n")
}
