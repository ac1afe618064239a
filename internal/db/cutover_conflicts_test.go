package db_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/resolverd/resolverd/internal/db"
)

// wholeDatabase renders the schema and every row of every table, to prove a refused run wrote nothing.
func wholeDatabase(t *testing.T, pool *pgxpool.Pool) string {
	t.Helper()
	rows, err := pool.Query(context.Background(), `SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1`)
	if err != nil {
		t.Fatal(err)
	}
	var tables []string
	for rows.Next() {
		var n string
		_ = rows.Scan(&n)
		tables = append(tables, n)
	}
	rows.Close()
	out := schemaOf(t, pool)
	for _, table := range tables {
		out += "\n" + table + ":\n" + rowsOf(t, pool, table)
	}
	return out
}

// TestCutoverConflictsFailLoudlyAndWriteNothing: each conflict stops `migrate up` before anything is
// applied, with a message naming the offending row; preflight lists the same; after the fix the
// same command succeeds.
func TestCutoverConflictsFailLoudlyAndWriteNothing(t *testing.T) {
	const (
		openaiID = "00000000-0000-4000-8000-0000000000a1"
		otherID  = "00000000-0000-4000-8000-0000000000b2"
	)
	cases := []struct {
		name string
		// at is the version the database is at when the conflict is made (1: legacy, 3: just before
		// the cutover, where ai_providers exists).
		at       int64
		conflict []string
		want     string
		fix      []string
	}{
		{"model config names a type with no legacy provider", 1,
			[]string{`INSERT INTO chat_model_configs (id, provider, model) VALUES ('00000000-0000-4000-8000-0000000000c1', 'google', 'gemini')`},
			"chat_model_configs 00000000-0000-4000-8000-0000000000c1 (model 'gemini') names provider type 'google'",
			[]string{`INSERT INTO chat_providers (id, provider) VALUES (gen_random_uuid(), 'google')`}},
		{"deleted model config names a type with no legacy provider", 1,
			[]string{`INSERT INTO chat_model_configs (id, provider, model, deleted) VALUES ('00000000-0000-4000-8000-0000000000c2', 'vercel', 'v0', true)`},
			"00000000-0000-4000-8000-0000000000c2",
			[]string{`DELETE FROM chat_model_configs WHERE id = '00000000-0000-4000-8000-0000000000c2'`}},
		{"user key of a deleted user", 1,
			[]string{`INSERT INTO users (id, username, deleted) VALUES ('00000000-0000-4000-8000-0000000000d1', 'gone', true)`,
				`INSERT INTO user_chat_provider_keys (id, user_id, chat_provider_id, api_key) VALUES ('00000000-0000-4000-8000-0000000000e1', '00000000-0000-4000-8000-0000000000d1', '` + openaiID + `', 'sk-x')`},
			"user_chat_provider_keys 00000000-0000-4000-8000-0000000000e1 belongs to deleted user",
			[]string{`DELETE FROM user_chat_provider_keys WHERE id = '00000000-0000-4000-8000-0000000000e1'`}},
		{"empty user key", 1,
			[]string{`INSERT INTO users (id, username) VALUES ('00000000-0000-4000-8000-0000000000d2', 'emptykey')`,
				`INSERT INTO user_chat_provider_keys (id, user_id, chat_provider_id, api_key) VALUES ('00000000-0000-4000-8000-0000000000e2', '00000000-0000-4000-8000-0000000000d2', '` + openaiID + `', '  ')`},
			"user_chat_provider_keys 00000000-0000-4000-8000-0000000000e2 (user 00000000-0000-4000-8000-0000000000d2) has an empty api_key",
			[]string{`DELETE FROM user_chat_provider_keys WHERE id = '00000000-0000-4000-8000-0000000000e2'`}},
		{"base url the new layout refuses", 1,
			[]string{`UPDATE chat_providers SET base_url = 'api.openai.com' WHERE id = '` + openaiID + `'`},
			"has base_url 'api.openai.com'",
			[]string{`UPDATE chat_providers SET base_url = 'https://api.openai.com' WHERE id = '` + openaiID + `'`}},
		{"live agents-<type> provider with another id", 3,
			[]string{`INSERT INTO ai_providers (id, type, name) VALUES ('` + otherID + `', 'openai', 'agents-openai')`},
			"ai_providers " + otherID + " is live and named 'agents-openai'",
			[]string{`UPDATE ai_providers SET name = 'openai-manual' WHERE id = '` + otherID + `'`}},
		{"ai_providers already holds the legacy id", 3,
			[]string{`INSERT INTO ai_providers (id, type, name) VALUES ('` + openaiID + `', 'openai', 'pre-made')`},
			"ai_providers already has a row with id " + openaiID,
			[]string{`DELETE FROM ai_providers WHERE id = '` + openaiID + `'`}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ctx := context.Background()
			pool, m := legacyDB(t)
			exec(t, pool, `INSERT INTO chat_providers (id, provider, api_key) VALUES ('`+openaiID+`', 'openai', 'sk-central')`)
			exec(t, pool, `INSERT INTO chat_model_configs (id, provider, model) VALUES (gen_random_uuid(), 'openai', 'gpt-4o')`)
			if c.at > 1 {
				if _, err := m.UpTo(ctx, c.at); err != nil {
					t.Fatal(err)
				}
			}
			for _, q := range c.conflict {
				exec(t, pool, q)
			}
			before := wholeDatabase(t, pool)

			report, err := db.Preflight(ctx, pool)
			if err != nil || !report.Pending || len(report.Conflicts) != 1 || !strings.Contains(report.Conflicts[0].Detail, c.want) {
				t.Fatalf("preflight: %+v, %v; want one conflict mentioning %q", report, err, c.want)
			}
			_, err = m.UpTo(ctx, 0)
			if !db.IsConflicts(err) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("migrate up: %v; want a conflict naming %q", err, c.want)
			}
			if after := wholeDatabase(t, pool); after != before {
				t.Fatalf("the refused run changed the database:\n--- before\n%s\n--- after\n%s", before, after)
			}
			if v, _ := db.SchemaVersion(ctx, pool); v != c.at {
				t.Fatalf("schema version %d after the refused run, want %d", v, c.at)
			}
			for _, q := range c.fix {
				exec(t, pool, q)
			}
			if _, err := m.UpTo(ctx, 0); err != nil {
				t.Fatalf("migrate up after the fix: %v", err)
			}
		})
	}
}

// TestCutoverGuardsItselfToo: a conflict made after preflight passed (a writer racing the
// operator) is caught inside the cutover's own transaction, which then rolls back.
func TestCutoverGuardsItselfToo(t *testing.T) {
	ctx := context.Background()
	pool, m := legacyDB(t)
	if _, err := m.UpTo(ctx, 3); err != nil {
		t.Fatal(err)
	}
	exec(t, pool, `INSERT INTO chat_model_configs (id, provider, model) VALUES ('00000000-0000-4000-8000-0000000000f1', 'azure', 'gpt-4o')`)
	before := wholeDatabase(t, pool)
	// ApplyVersion skips the pre-run preflight of UpTo, as a racing writer would defeat it.
	_, err := m.ApplyVersion(ctx, db.CutoverVersion)
	var conflicts *db.ConflictsError
	if !errors.As(err, &conflicts) || len(conflicts.Conflicts) != 1 {
		t.Fatalf("cutover: %v", err)
	}
	if after := wholeDatabase(t, pool); after != before {
		t.Fatal("the cutover's refusal left changes behind")
	}
}

// TestCutoverOnThousandsOfRows moves a few thousand of each row and checks the counts.
func TestCutoverOnThousandsOfRows(t *testing.T) {
	ctx := context.Background()
	pool, m := legacyDB(t)
	const n = 5000
	seedMany(t, pool, n)
	start := time.Now()
	if _, err := m.UpTo(ctx, 0); err != nil {
		t.Fatal(err)
	}
	t.Logf("cutover of %d model configs and %d user keys took %s", n, n, time.Since(start))
	for table, want := range map[string]int{"ai_providers": 8, "ai_provider_keys": 8, "user_ai_provider_keys": n, "chat_model_configs": n} {
		var got int
		if err := pool.QueryRow(ctx, "SELECT count(*) FROM "+table).Scan(&got); err != nil || got != want {
			t.Errorf("%s: %d rows (%v), want %d", table, got, err, want)
		}
	}
	var orphans int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM chat_model_configs m JOIN ai_providers p ON p.id = m.ai_provider_id WHERE p.type <> split_part(m.model, '/', 1)`).Scan(&orphans); err != nil {
		t.Fatal(err)
	}
	if orphans != 0 {
		t.Errorf("%d model configs point at a provider of another type", orphans)
	}
}

// seedMany writes n users with a key each and n model configs over the eight legacy providers.
func seedMany(t testing.TB, pool *pgxpool.Pool, n int) {
	exec := func(sql string, args ...any) {
		if _, err := pool.Exec(context.Background(), sql, args...); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
	types := []string{"anthropic", "azure", "bedrock", "google", "openai", "openai-compat", "openrouter", "vercel"}
	for i, typ := range types {
		exec(`INSERT INTO chat_providers (id, provider, api_key, allow_user_api_key) VALUES (gen_random_uuid(), $1, $2, $3)`, typ, fmt.Sprintf("sk-%d", i), i%2 == 0)
	}
	exec(`INSERT INTO users (id, username) SELECT gen_random_uuid(), 'user' || g FROM generate_series(1, $1) g`, n)
	exec(`INSERT INTO user_chat_provider_keys (id, user_id, chat_provider_id, api_key)
		SELECT gen_random_uuid(), u.id, p.id, 'sk-user-' || u.username
		  FROM (SELECT id, username, row_number() OVER (ORDER BY id) AS r FROM users) u
		  JOIN (SELECT id, row_number() OVER (ORDER BY provider) - 1 AS r FROM chat_providers) p ON p.r = u.r % 8`)
	exec(`INSERT INTO chat_model_configs (id, provider, model)
		SELECT gen_random_uuid(), t, t || '/model-' || g FROM generate_series(1, $1) g, LATERAL (SELECT ($2::text[])[1 + g % 8] AS t) x`, n, types)
}
