package db_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/resolverd/resolverd/internal/db"
	"github.com/resolverd/resolverd/internal/errs"
	"github.com/resolverd/resolverd/internal/keyring"
	"github.com/resolverd/resolverd/internal/pgtest"
	"github.com/resolverd/resolverd/internal/resolve"
	"github.com/resolverd/resolverd/pkg/secret"
)

// opened is k's plaintext; the test fails if it does not open.
func opened(t *testing.T, k *resolve.Key) string {
	t.Helper()
	if k == nil {
		t.Fatal("no key")
	}
	s, _, err := k.Open(context.Background())
	if err != nil {
		t.Fatalf("open key %s: %v", k.ID, err)
	}
	return s.Reveal()
}

// storedValues maps each key row's id to its stored api_key.
func storedValues(t *testing.T, pool *pgxpool.Pool) map[uuid.UUID]string {
	t.Helper()
	out := map[uuid.UUID]string{}
	for _, table := range db.SecretTables {
		rows, err := pool.Query(context.Background(), `SELECT id, api_key FROM `+table)
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			var id uuid.UUID
			var v string
			if err := rows.Scan(&id, &v); err != nil {
				t.Fatal(err)
			}
			out[id] = v
		}
		rows.Close()
	}
	return out
}

func validated(t *testing.T, pool *pgxpool.Pool) map[string]bool {
	t.Helper()
	out := map[string]bool{}
	for _, table := range db.SecretTables {
		var v bool
		if err := pool.QueryRow(context.Background(), `SELECT convalidated FROM pg_constraint WHERE conname = $1`, db.SealedConstraint(table)).Scan(&v); err != nil {
			t.Fatalf("constraint %s: %v", db.SealedConstraint(table), err)
		}
		out[table] = v
	}
	return out
}

// TestLegacyKeysThroughMigrationTenRotateAndDown: a legacy database with plain and old-format keys
// migrates up past version 10 (the cutover inserts plain rows before the CHECK exists); admin writes
// that touch a plain row seal it; keys rotate binds every value and validates the CHECK (twice:
// idempotent); going below 10 refuses while bound values exist, and after `keys rotate --format 1`
// goes down with values the legacy layout opens.
func TestLegacyKeysThroughMigrationTenRotateAndDown(t *testing.T) {
	ctx := context.Background()
	pool, m := legacyDB(t)
	seedLegacy(t, pool)
	if _, err := m.UpTo(ctx, 0); err != nil {
		t.Fatalf("migrate up from the legacy layout with plain keys: %v", err)
	}
	if v := validated(t, pool); v["ai_provider_keys"] || v["user_ai_provider_keys"] {
		t.Fatalf("the CHECKs are valid before keys rotate: %v", v)
	}
	var plain int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM ai_provider_keys WHERE api_key_key_id IS NULL`).Scan(&plain); err != nil || plain != 3 {
		t.Fatalf("%d plain central keys after the cutover, want 3 (%v)", plain, err)
	}
	var pgErr *pgconn.PgError
	if _, err := pool.Exec(ctx, `INSERT INTO ai_provider_keys (id, provider_id, api_key) VALUES (gen_random_uuid(), $1, 'sk-new-plain')`, providerID(0)); !errors.As(err, &pgErr) || pgErr.ConstraintName != "ai_provider_keys_api_key_sealed" {
		t.Fatalf("a new plain key: %v", err)
	}

	s := db.New(pool, pgtest.Keyring)
	// openai (4) has an enabled plain key, which rotating disables; azure (1) a disabled plain one,
	// which enabling touches. Both writes seal the plain row they update.
	rotated, err := s.RotateProviderKey(ctx, uuid.New(), providerID(4), secret.New("sk-rotated-openai"))
	if err != nil {
		t.Fatalf("rotate a provider whose key is plain legacy text: %v", err)
	}
	var azureKey uuid.UUID
	if err := pool.QueryRow(ctx, `SELECT id FROM ai_provider_keys WHERE provider_id = $1`, providerID(1)).Scan(&azureKey); err != nil {
		t.Fatal(err)
	}
	if _, err := s.SetProviderKeyEnabled(ctx, azureKey, true); err != nil {
		t.Fatalf("enable a plain legacy key: %v", err)
	}
	if k, err := oldestEnabledCentralKey(ctx, s, providerID(1)); err != nil || opened(t, k) != "sk-legacy-plain-azure" {
		t.Fatalf("the sealed-on-touch azure key: %v", err)
	}
	if k, err := oldestEnabledCentralKey(ctx, s, providerID(4)); err != nil || k.ID != rotated.ID || opened(t, k) != "sk-rotated-openai" {
		t.Fatalf("openai after rotation: %v", err)
	}

	var out strings.Builder
	target := db.Target{KeyID: pgtest.Keyring.IDs()[0], Format: keyring.FormatBound}
	if err := s.RotateSecrets(ctx, target, 2, &out); err != nil {
		t.Fatalf("keys rotate: %v\n%s", err, out.String())
	}
	for _, want := range []string{"bound to its row", "ai_provider_keys: ", "user_ai_provider_keys: ", "the CHECKs ai_provider_keys_api_key_sealed, user_ai_provider_keys_api_key_sealed are validated"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("keys rotate output lacks %q:\n%s", want, out.String())
		}
	}
	for id, v := range storedValues(t, pool) {
		if keyring.Format(v) != keyring.FormatBound {
			t.Errorf("key %s is stored as %q after keys rotate, want the bound format", id, v)
		}
	}
	if v := validated(t, pool); !v["ai_provider_keys"] || !v["user_ai_provider_keys"] {
		t.Fatalf("the CHECKs after keys rotate: %v", v)
	}
	for i, f := range flagCombos {
		if i%3 == 2 || i == 4 {
			continue // no legacy key; openai's was rotated
		}
		k, err := oldestEnabledCentralKey(ctx, s, providerID(i))
		if err != nil {
			t.Fatal(err)
		}
		if k == nil {
			continue // moved disabled
		}
		if got := opened(t, k); got != "sk-legacy-"+f.typ && got != "sk-legacy-plain-"+f.typ {
			t.Errorf("%s's key does not open to its legacy plaintext after keys rotate", f.typ)
		}
	}
	if k, err := s.UserKey(ctx, userID(0), providerID(0)); err != nil || opened(t, k) != "sk-user0-anthropic" {
		t.Fatalf("a legacy user key after keys rotate: %v", err)
	}
	out.Reset()
	if err := s.RotateSecrets(ctx, target, 2, &out); err != nil || !strings.Contains(out.String(), "they already were") || strings.Contains(out.String(), "keys: 1/") {
		t.Fatalf("keys rotate again: %v\n%s", err, out.String())
	}

	// Down below 10 refuses while bound values exist, and changes nothing.
	if _, err := m.DownTo(ctx, 9); err == nil || !strings.Contains(err.Error(), "keys rotate --format 1") {
		t.Fatalf("migrate down to 9 with bound values: %v", err)
	}
	if v, err := db.SchemaVersion(ctx, pool); err != nil || v != db.LatestVersion() {
		t.Fatalf("schema version %d after the refused down (%v)", v, err)
	}
	out.Reset()
	if err := s.RotateSecrets(ctx, db.Target{KeyID: target.KeyID, Format: keyring.FormatUnbound}, 500, &out); err != nil {
		t.Fatalf("keys rotate --format 1: %v", err)
	}
	for id, v := range storedValues(t, pool) {
		if keyring.Format(v) != keyring.FormatUnbound {
			t.Errorf("key %s is stored as %q after keys rotate --format 1", id, v)
		}
	}
	if _, err := m.DownTo(ctx, 1); err != nil {
		t.Fatalf("migrate down to 1 after keys rotate --format 1: %v", err)
	}
	// What the legacy layout holds opens as it always did: no place.
	var sealed string
	var keyID *string
	if err := pool.QueryRow(ctx, `SELECT api_key, api_key_key_id FROM chat_providers WHERE id = $1`, providerID(4)).Scan(&sealed, &keyID); err != nil {
		t.Fatal(err)
	}
	if v, err := pgtest.Keyring.Open(sealed, keyID, keyring.Place{}); err != nil || v.Reveal() != "sk-rotated-openai" {
		t.Fatalf("the legacy layout's openai key: %v", err)
	}
}

// TestPutUserProviderKeyBindsTheRowThatHoldsIt: replacing a user's key keeps the row's id, and the
// new value is bound to that row, not to the id the request proposed.
func TestPutUserProviderKeyBindsTheRowThatHoldsIt(t *testing.T) {
	ctx := context.Background()
	pool := pgtest.NewPool(t)
	s := db.New(pool, pgtest.Keyring)
	p, err := s.CreateProvider(ctx, resolve.Provider{ID: uuid.New(), Type: "anthropic", Name: "a", Enabled: true, BYOKPolicy: resolve.BYOKRequired})
	if err != nil {
		t.Fatal(err)
	}
	u := uuid.New()
	if _, err := s.PutUser(ctx, u, "alice"); err != nil {
		t.Fatal(err)
	}
	first, err := s.PutUserProviderKey(ctx, uuid.New(), u, p.ID, secret.New("sk-first"))
	if err != nil {
		t.Fatal(err)
	}
	second, err := s.PutUserProviderKey(ctx, uuid.New(), u, p.ID, secret.New("sk-second"))
	if err != nil {
		t.Fatal(err)
	}
	if second.ID != first.ID || second.Secret.Reveal() != "sk-second" {
		t.Fatalf("replaced key: id %s (first %s)", second.ID, first.ID)
	}
	if k, err := s.UserKey(ctx, u, p.ID); err != nil || k.ID != first.ID || opened(t, k) != "sk-second" {
		t.Fatalf("the replaced key: %v", err)
	}
	// Concurrent first Puts of one user and provider: one row, holding a value that opens there.
	v := uuid.New()
	if _, err := s.PutUser(ctx, v, "bob"); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			if _, err := s.PutUserProviderKey(ctx, uuid.New(), v, p.ID, secret.New("sk-race-"+string(rune('a'+i)))); err != nil {
				t.Errorf("concurrent put: %v", err)
			}
		})
	}
	wg.Wait()
	if k, err := s.UserKey(ctx, v, p.ID); err != nil || !strings.HasPrefix(opened(t, k), "sk-race-") {
		t.Fatalf("after concurrent puts: %v", err)
	}
}

// TestAValueMovedToAnotherRowIsUnreadableThereOnly: a user's sealed key copied into a central-key
// row (psql) loads, fails to open with SECRET_UNREADABLE naming the row and the encryption key, is
// reported once per read, and does not disturb the load of the chat or the other keys.
func TestAValueMovedToAnotherRowIsUnreadableThereOnly(t *testing.T) {
	ctx := context.Background()
	pool := pgtest.NewPool(t)
	s := db.New(pool, pgtest.Keyring)
	var reported []db.UnreadableSecret
	s.OnUnreadableSecret(func(_ context.Context, u db.UnreadableSecret) { reported = append(reported, u) })
	openai, err := s.CreateProvider(ctx, resolve.Provider{ID: uuid.New(), Type: "openai", Name: "openai", Enabled: true, BYOKPolicy: resolve.BYOKOptional})
	if err != nil {
		t.Fatal(err)
	}
	central, err := s.AddProviderKey(ctx, uuid.New(), openai.ID, secret.New("sk-central"), true)
	if err != nil {
		t.Fatal(err)
	}
	u := uuid.New()
	if _, err := s.PutUser(ctx, u, "alice"); err != nil {
		t.Fatal(err)
	}
	own, err := s.PutUserProviderKey(ctx, uuid.New(), u, openai.ID, secret.New("sk-alice"))
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := s.CreateModelConfig(ctx, resolve.ModelConfig{ID: uuid.New(), ProviderID: openai.ID, Model: "m", Enabled: true, ContextLimit: 10, Options: []byte("{}")})
	if err != nil {
		t.Fatal(err)
	}
	chat, err := s.PutChat(ctx, uuid.New(), u, cfg.ID)
	if err != nil {
		t.Fatal(err)
	}
	exec(t, pool, `UPDATE ai_provider_keys k SET api_key = u.api_key, api_key_key_id = u.api_key_key_id
		FROM user_ai_provider_keys u WHERE k.id = $1 AND u.id = $2`, central.ID, own.ID)

	l, err := s.LoadResolution(ctx, chat.ID, uuid.Nil, db.Prefetch{UserKeys: true, CentralKeys: true})
	if err != nil {
		t.Fatalf("a load with a moved key in it: %v", err)
	}
	if got := opened(t, l.UserKeys[openai.ID]); got != "sk-alice" {
		t.Fatal("the user's own key does not open where it is")
	}
	if len(reported) != 0 {
		t.Fatalf("a load opened keys: %v", reported)
	}
	for range 2 {
		k := l.CentralKeys[openai.ID][0]
		if _, _, err := k.Open(ctx); !errs.Is(err, errs.SecretUnreadable) {
			t.Fatalf("the moved key opened: %v", err)
		} else {
			var e *errs.Error
			errors.As(err, &e)
			if e.Metadata["key_id"] != central.ID.String() || e.Metadata["encryption_key_id"] != pgtest.Keyring.IDs()[0] || strings.Contains(err.Error(), "sk-alice") {
				t.Fatalf("the error: %v (metadata %v)", err, e.Metadata)
			}
		}
	}
	if k, err := oldestEnabledCentralKey(ctx, s, openai.ID); err != nil {
		t.Fatal(err)
	} else if _, _, err := k.Open(ctx); !errs.Is(err, errs.SecretUnreadable) {
		t.Fatalf("the moved key, read alone: %v", err)
	}
	// Reported once per key read (the loaded key keeps its failure), never the value.
	if len(reported) != 2 || reported[0].Table != "ai_provider_keys" || reported[0].RowID != central.ID || reported[0].EncryptionKeyID != pgtest.Keyring.IDs()[0] {
		t.Fatalf("reported %+v, want the central key row twice", reported)
	}
	// The admin listing still lists the row, without a fingerprint (its value is unreadable).
	keys, err := s.ListProviderKeys(ctx, openai.ID, db.Page[db.ProviderKeyPos]{})
	if err != nil || len(keys) != 1 || !keys[0].Secret.IsZero() {
		t.Fatalf("listing the moved key: %v, %d keys", err, len(keys))
	}
}

// oldestEnabledCentralKey is the first of the provider's enabled central keys (the one policy
// "oldest" answers with when no key is cooling down or suspended), or nil.
func oldestEnabledCentralKey(ctx context.Context, s *db.Store, providerID uuid.UUID) (*resolve.Key, error) {
	keys, err := s.EnabledCentralKeys(ctx, providerID)
	if err != nil || len(keys) == 0 {
		return nil, err
	}
	return keys[0], nil
}
