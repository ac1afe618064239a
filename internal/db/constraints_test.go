package db_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/resolverd/resolverd/internal/db"
	"github.com/resolverd/resolverd/internal/errs"
	"github.com/resolverd/resolverd/internal/pgtest"
	"github.com/resolverd/resolverd/internal/resolve"
	"github.com/resolverd/resolverd/pkg/secret"
)

// TestConstraintsHoldForEveryWriter checks the database's own backstops, which also bind writers
// that never pass the API's validators (psql, a migration, another service).
func TestConstraintsHoldForEveryWriter(t *testing.T) {
	pool := pgtest.NewPool(t)
	ctx := context.Background()
	exec(t, pool, `INSERT INTO ai_providers (id, type, name) VALUES ('10000000-0000-4000-8000-000000000001', 'openai', 'openai')`)
	exec(t, pool, `INSERT INTO users (id, username) VALUES ('30000000-0000-4000-8000-000000000001', 'alice')`)
	exec(t, pool, `INSERT INTO chat_model_configs (id, ai_provider_id, model, is_default) VALUES ('20000000-0000-4000-8000-000000000001', '10000000-0000-4000-8000-000000000001', 'gpt-4o', true)`)
	exec(t, pool, `INSERT INTO encryption_keys (id) VALUES ('0123456789abcdef')`)

	cases := []struct {
		name, sql, code string
		constraint      string // when set, the constraint the error must name
	}{
		{"live name taken", `INSERT INTO ai_providers (id, type, name) VALUES (gen_random_uuid(), 'openai', 'openai')`, "23505", ""},
		{"bad type", `INSERT INTO ai_providers (id, type, name) VALUES (gen_random_uuid(), 'gpt', 'x')`, "23514", ""},
		{"bad name", `INSERT INTO ai_providers (id, type, name) VALUES (gen_random_uuid(), 'openai', 'Open_AI')`, "23514", ""},
		{"name too long", `INSERT INTO ai_providers (id, type, name) VALUES (gen_random_uuid(), 'openai', repeat('a', 64))`, "23514", ""},
		{"relative base url", `INSERT INTO ai_providers (id, type, name, base_url) VALUES (gen_random_uuid(), 'openai', 'x', '/v1')`, "23514", ""},
		{"bad policy", `INSERT INTO ai_providers (id, type, name, byok_policy) VALUES (gen_random_uuid(), 'openai', 'x', 'sometimes')`, "23514", ""},
		{"empty central key", `INSERT INTO ai_provider_keys (id, provider_id, api_key, api_key_key_id) VALUES (gen_random_uuid(), '10000000-0000-4000-8000-000000000001', '', '0123456789abcdef')`, "23514", ""},
		{"key of a missing provider", `INSERT INTO ai_provider_keys (id, provider_id, api_key, api_key_key_id) VALUES (gen_random_uuid(), gen_random_uuid(), 'k', '0123456789abcdef')`, "23503", ""},
		{"empty user key", `INSERT INTO user_ai_provider_keys (id, user_id, ai_provider_id, api_key, api_key_key_id) VALUES (gen_random_uuid(), '30000000-0000-4000-8000-000000000001', '10000000-0000-4000-8000-000000000001', '', '0123456789abcdef')`, "23514", ""},
		// Migration 10: no new plain secret (a NULL key id), whoever writes it.
		{"plain central key", `INSERT INTO ai_provider_keys (id, provider_id, api_key) VALUES (gen_random_uuid(), '10000000-0000-4000-8000-000000000001', 'sk-plain')`, "23514", "ai_provider_keys_api_key_sealed"},
		{"plain user key", `INSERT INTO user_ai_provider_keys (id, user_id, ai_provider_id, api_key) VALUES (gen_random_uuid(), '30000000-0000-4000-8000-000000000001', '10000000-0000-4000-8000-000000000001', 'sk-plain')`, "23514", "user_ai_provider_keys_api_key_sealed"},
		{"unknown encryption key", `INSERT INTO ai_provider_keys (id, provider_id, api_key, api_key_key_id) VALUES (gen_random_uuid(), '10000000-0000-4000-8000-000000000001', 'v2:x', 'fedcba9876543210')`, "23503", ""},
		{"second live default", `INSERT INTO chat_model_configs (id, ai_provider_id, model, is_default) VALUES (gen_random_uuid(), '10000000-0000-4000-8000-000000000001', 'm', true)`, "23505", ""},
		{"live config without provider", `INSERT INTO chat_model_configs (id, model) VALUES (gen_random_uuid(), 'm')`, "23514", ""},
		{"context limit 0", `INSERT INTO chat_model_configs (id, ai_provider_id, model, context_limit) VALUES (gen_random_uuid(), '10000000-0000-4000-8000-000000000001', 'm', 0)`, "23514", ""},
		{"threshold 101", `INSERT INTO chat_model_configs (id, ai_provider_id, model, compression_threshold) VALUES (gen_random_uuid(), '10000000-0000-4000-8000-000000000001', 'm', 101)`, "23514", ""},
		{"options not an object", `INSERT INTO chat_model_configs (id, ai_provider_id, model, options) VALUES (gen_random_uuid(), '10000000-0000-4000-8000-000000000001', 'm', '[1]')`, "23514", ""},
		{"chat of a missing user", `INSERT INTO chats (id, owner_id) VALUES (gen_random_uuid(), gen_random_uuid())`, "23503", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := pool.Exec(ctx, c.sql)
			var pgErr *pgconn.PgError
			if !errors.As(err, &pgErr) || pgErr.Code != c.code {
				t.Fatalf("got %v, want SQLSTATE %s", err, c.code)
			}
			if c.constraint != "" && pgErr.ConstraintName != c.constraint {
				t.Fatalf("violated %q, want %q", pgErr.ConstraintName, c.constraint)
			}
		})
	}

	// What the constraints allow: a deleted row's name and default flag are free again; a deleted
	// config needs no provider.
	// Soft-deleting a provider from psql disables it by itself (docs/CONTRACT.md §1: soft delete also disables),
	// a deleted row inserted "enabled" is stored disabled, and enabling a deleted provider is refused.
	exec(t, pool, `UPDATE ai_providers SET deleted = true WHERE name = 'openai'`)
	exec(t, pool, `INSERT INTO ai_providers (id, type, name, deleted, enabled) VALUES (gen_random_uuid(), 'openai', 'x', true, true)`)
	var deleted, enabled int
	if err := pool.QueryRow(ctx, `SELECT count(*), count(*) FILTER (WHERE enabled) FROM ai_providers WHERE deleted`).Scan(&deleted, &enabled); err != nil {
		t.Fatal(err)
	}
	if deleted != 2 || enabled != 0 {
		t.Fatalf("%d deleted providers, %d of them enabled; want 2, 0", deleted, enabled)
	}
	var pgErr *pgconn.PgError
	if _, err := pool.Exec(ctx, `UPDATE ai_providers SET enabled = true WHERE deleted`); !errors.As(err, &pgErr) || pgErr.Code != "23514" {
		t.Fatalf("enabling a deleted provider: %v, want SQLSTATE 23514", err)
	}
	exec(t, pool, `INSERT INTO ai_providers (id, type, name) VALUES (gen_random_uuid(), 'openai', 'openai')`)
	exec(t, pool, `UPDATE chat_model_configs SET deleted = true`)
	exec(t, pool, `INSERT INTO chat_model_configs (id, ai_provider_id, model, is_default) VALUES (gen_random_uuid(), '10000000-0000-4000-8000-000000000001', 'm2', true)`)
	exec(t, pool, `INSERT INTO chat_model_configs (id, model, deleted) VALUES (gen_random_uuid(), 'gone', true)`)
}

func TestDeletingAUserRemovesTheirKeysWhoeverWritesTheFlag(t *testing.T) {
	pool := pgtest.NewPool(t)
	ctx := context.Background()
	s := db.New(pool, pgtest.Keyring)
	p, err := s.CreateProvider(ctx, resolve.Provider{ID: uuid.New(), Type: "openai", Name: "openai", Enabled: true, BYOKPolicy: resolve.BYOKOptional})
	if err != nil {
		t.Fatal(err)
	}
	alice, bob := uuid.New(), uuid.New()
	for name, id := range map[string]uuid.UUID{"alice": alice, "bob": bob} {
		if _, err := s.PutUser(ctx, id, name); err != nil {
			t.Fatal(err)
		}
		if _, err := s.PutUserProviderKey(ctx, uuid.New(), id, p.ID, secret.New("sk-"+name)); err != nil {
			t.Fatal(err)
		}
	}
	exec(t, pool, `UPDATE users SET deleted = true WHERE id = $1`, alice) // as psql would
	var left []string
	rows, _ := pool.Query(ctx, `SELECT u.username FROM user_ai_provider_keys k JOIN users u ON u.id = k.user_id`)
	for rows.Next() {
		var n string
		_ = rows.Scan(&n)
		left = append(left, n)
	}
	if strings.Join(left, ",") != "bob" {
		t.Fatalf("keys left after deleting alice: %v", left)
	}
	if _, err := s.PutUserProviderKey(ctx, uuid.New(), alice, p.ID, secret.New("sk-again")); errs.ReasonOf(err) != errs.UserNotFound {
		t.Fatalf("a key for a deleted user: %v", err)
	}
}

func TestStoreMapsPostgresErrorsToReasons(t *testing.T) {
	pool := pgtest.NewPool(t)
	ctx := context.Background()
	s := db.New(pool, pgtest.Keyring)
	if _, err := s.CreateProvider(ctx, resolve.Provider{ID: uuid.New(), Type: "openai", Name: "dup", Enabled: true, BYOKPolicy: resolve.BYOKDisabled}); err != nil {
		t.Fatal(err)
	}
	_, err := s.CreateProvider(ctx, resolve.Provider{ID: uuid.New(), Type: "openai", Name: "dup", Enabled: true, BYOKPolicy: resolve.BYOKDisabled})
	var e *errs.Error
	if !errors.As(err, &e) || e.Reason != errs.AlreadyExists || e.Metadata["field"] != "name" {
		t.Fatalf("duplicate name: %v", err)
	}
	if strings.Contains(e.Message, "INSERT") || strings.Contains(e.Message, "SQLSTATE") {
		t.Fatalf("the caller-facing message shows SQL: %q", e.Message)
	}
	if _, err := s.PutUser(ctx, uuid.New(), "bob"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.PutUser(ctx, uuid.New(), "bob"); errs.ReasonOf(err) != errs.AlreadyExists {
		t.Fatalf("duplicate username: %v", err)
	}
	if _, err := s.PutChat(ctx, uuid.New(), uuid.New(), uuid.Nil); errs.ReasonOf(err) != errs.UserNotFound {
		t.Fatalf("chat of a missing owner: %v", err)
	}
	if err := s.DeleteProvider(ctx, uuid.New()); errs.ReasonOf(err) != errs.NotFound {
		t.Fatalf("delete a missing provider: %v", err)
	}

	// A database that is gone: connection failures are DATABASE_UNAVAILABLE, not INTERNAL.
	pool.Close()
	if _, err := s.ListProviders(ctx, db.Page[db.ProviderPos]{}); errs.ReasonOf(err) != errs.DatabaseUnavailable {
		t.Fatalf("closed pool: %v", err)
	}
	if _, err := db.Connect(ctx, "postgres://u:p@127.0.0.1:1/db?connect_timeout=2"); errs.ReasonOf(err) != errs.DatabaseUnavailable {
		t.Fatalf("refused connection: %v", err)
	}
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	live := db.New(pgtest.NewPool(t), pgtest.Keyring)
	if _, err := live.ListProviders(cancelled, db.Page[db.ProviderPos]{}); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled call: %v", err)
	}
}
