package db_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/resolverd/resolverd/internal/db"
	"github.com/resolverd/resolverd/internal/pgtest"
	"github.com/resolverd/resolverd/pkg/secret"
)

// legacyFlags is one combination of the legacy policy flags and the byok_policy it maps to.
type legacyFlags struct {
	typ                          string
	central, allowUser, fallback bool
	wantPolicy                   string
}

// flagCombos covers all eight combinations, one provider type each (there are exactly eight).
var flagCombos = []legacyFlags{
	{"anthropic", false, false, false, "disabled"},
	{"azure", false, false, true, "disabled"},
	{"bedrock", true, false, false, "disabled"},
	{"google", true, false, true, "disabled"},
	{"openai", true, true, true, "optional"},
	{"openai-compat", true, true, false, "required"},
	{"openrouter", false, true, true, "required"},
	{"vercel", false, true, false, "required"},
}

// legacyDB returns a pool on a database at version 1 (the legacy layout).
func legacyDB(t *testing.T) (*pgxpool.Pool, *db.Migrator) {
	t.Helper()
	pool := pgtest.Connect(t, pgtest.NewEmptyDatabase(t))
	m := migrator(t, pool)
	if _, err := m.UpTo(context.Background(), 1); err != nil {
		t.Fatal(err)
	}
	return pool, m
}

// seal encrypts a value the way the legacy layout did (no associated data), for legacy rows that
// hold ciphertext.
func seal(t *testing.T, plain string) (string, string) {
	t.Helper()
	ct, id, err := pgtest.Keyring.SealUnbound(secret.New(plain))
	if err != nil {
		t.Fatal(err)
	}
	return ct, id
}

// seedLegacy fills a legacy database: every flag combination, sealed, plain and empty central keys,
// users with keys, live, disabled, deleted and default model configs, and chats.
func seedLegacy(t *testing.T, pool *pgxpool.Pool) {
	t.Helper()
	for i, f := range flagCombos {
		var key, keyID any = "", nil
		switch i % 3 {
		case 0:
			ct, id := seal(t, "sk-legacy-"+f.typ)
			key, keyID = ct, id
		case 1:
			key = "sk-legacy-plain-" + f.typ // a NULL key id: plain legacy text
		}
		exec(t, pool, `INSERT INTO chat_providers (id, provider, display_name, api_key, api_key_key_id, enabled, base_url,
			central_api_key_enabled, allow_user_api_key, allow_central_api_key_fallback, created_at, updated_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, now() - interval '30 days', now() - interval '1 day')`,
			providerID(i), f.typ, "Legacy "+f.typ, key, keyID, i != 3, map[bool]string{true: "https://" + f.typ + ".example.com/v1", false: ""}[i%2 == 0],
			f.central, f.allowUser, f.fallback)
	}
	for u := 0; u < 3; u++ {
		exec(t, pool, `INSERT INTO users (id, username, deleted) VALUES ($1, $2, false)`, userID(u), fmt.Sprintf("user%d", u))
		for i := range flagCombos {
			if (u+i)%2 == 0 {
				ct, id := seal(t, fmt.Sprintf("sk-user%d-%s", u, flagCombos[i].typ))
				exec(t, pool, `INSERT INTO user_chat_provider_keys (id, user_id, chat_provider_id, api_key, api_key_key_id) VALUES ($1, $2, $3, $4, $5)`,
					uuid.NewSHA1(uuid.NameSpaceOID, []byte(fmt.Sprintf("uk%d-%d", u, i))), userID(u), providerID(i), ct, id)
			}
		}
	}
	for i, f := range flagCombos {
		exec(t, pool, `INSERT INTO chat_model_configs (id, provider, model, enabled, is_default, deleted) VALUES ($1, $2, $3, $4, $5, $6)`,
			configID(i), f.typ, "model-"+f.typ, i != 2, i == 4, i == 6)
		exec(t, pool, `INSERT INTO chats (id, owner_id, last_model_config_id) VALUES ($1, $2, $3)`,
			uuid.NewSHA1(uuid.NameSpaceOID, []byte(fmt.Sprintf("chat%d", i))), userID(i%3), configID(i))
	}
}

func providerID(i int) uuid.UUID {
	return uuid.NewSHA1(uuid.NameSpaceOID, []byte(fmt.Sprintf("provider%d", i)))
}
func configID(i int) uuid.UUID {
	return uuid.NewSHA1(uuid.NameSpaceOID, []byte(fmt.Sprintf("config%d", i)))
}
func userID(i int) uuid.UUID {
	return uuid.NewSHA1(uuid.NameSpaceOID, []byte(fmt.Sprintf("user%d", i)))
}

// newLayoutRows renders the rows of the new layout, for row-by-row comparison.
func newLayoutRows(t *testing.T, pool *pgxpool.Pool) string {
	var parts []string
	for _, table := range []string{"ai_providers", "ai_provider_keys", "user_ai_provider_keys", "chat_model_configs", "chats", "users"} {
		parts = append(parts, table+":\n"+rowsOf(t, pool, table))
	}
	return strings.Join(parts, "\n")
}

func TestCutoverMovesEverythingAndRoundTrips(t *testing.T) {
	ctx := context.Background()
	pool, m := legacyDB(t)
	seedLegacy(t, pool)
	legacyBefore := map[string]string{}
	for _, table := range []string{"chat_providers", "user_chat_provider_keys", "chat_model_configs", "chats", "users"} {
		legacyBefore[table] = rowsOf(t, pool, table)
	}
	type legacyKey struct {
		apiKey  string
		keyID   *string
		central bool
	}
	legacyCentral := map[uuid.UUID]legacyKey{}
	krows, err := pool.Query(ctx, `SELECT id, api_key, api_key_key_id, central_api_key_enabled FROM chat_providers WHERE btrim(api_key) <> ''`)
	if err != nil {
		t.Fatal(err)
	}
	for krows.Next() {
		var id uuid.UUID
		var k legacyKey
		if err := krows.Scan(&id, &k.apiKey, &k.keyID, &k.central); err != nil {
			t.Fatal(err)
		}
		legacyCentral[id] = k
	}
	krows.Close()
	legacyKeys := len(legacyCentral)
	if legacyKeys == 0 || legacyKeys == len(flagCombos) {
		t.Fatalf("the fixture should have some empty legacy keys and some set, has %d of %d set", legacyKeys, len(flagCombos))
	}

	if _, err := m.UpTo(ctx, 0); err != nil {
		t.Fatalf("migrate up: %v", err)
	}
	for _, table := range []string{"chat_providers", "user_chat_provider_keys"} {
		var exists bool
		if err := pool.QueryRow(ctx, `SELECT to_regclass($1) IS NOT NULL`, table).Scan(&exists); err != nil {
			t.Fatal(err)
		}
		if exists {
			t.Errorf("legacy table %s still exists after the cutover", table)
		}
	}

	// Providers: same ids, agents-<type>, fields carried, policy mapped.
	for i, f := range flagCombos {
		var name, display, baseURL, policy string
		var enabled, deleted bool
		err := pool.QueryRow(ctx, `SELECT name, display_name, base_url, enabled, deleted, byok_policy FROM ai_providers WHERE id = $1`, providerID(i)).
			Scan(&name, &display, &baseURL, &enabled, &deleted, &policy)
		if err != nil {
			t.Fatalf("provider %s: %v", f.typ, err)
		}
		wantURL := map[bool]string{true: "https://" + f.typ + ".example.com/v1", false: ""}[i%2 == 0]
		if name != "agents-"+f.typ || display != "Legacy "+f.typ || baseURL != wantURL || enabled != (i != 3) || deleted || policy != f.wantPolicy {
			t.Errorf("provider %s: name %q display %q url %q enabled %v deleted %v policy %q; want policy %q",
				f.typ, name, display, baseURL, enabled, deleted, policy, f.wantPolicy)
		}
	}
	// Central keys: ciphertext and key id copied as they are, enabled per the legacy flag.
	for id, lk := range legacyCentral {
		var apiKey string
		var keyID *string
		var enabled bool
		err := pool.QueryRow(ctx, `SELECT api_key, api_key_key_id, enabled FROM ai_provider_keys WHERE provider_id = $1`, id).Scan(&apiKey, &keyID, &enabled)
		if err != nil {
			t.Fatalf("central key of provider %s: %v", id, err)
		}
		if apiKey != lk.apiKey || deref(keyID) != deref(lk.keyID) || enabled != lk.central {
			t.Errorf("central key of provider %s: %q/%s/%v, want %q/%s/%v", id, apiKey, deref(keyID), enabled, lk.apiKey, deref(lk.keyID), lk.central)
		}
	}
	var moved int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM ai_provider_keys`).Scan(&moved); err != nil || moved != legacyKeys {
		t.Fatalf("%d central keys moved, want %d (%v)", moved, legacyKeys, err)
	}
	var users, configsWithoutProvider int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM user_ai_provider_keys`).Scan(&users); err != nil {
		t.Fatal(err)
	}
	if want := strings.Count(legacyBefore["user_chat_provider_keys"], "\n") + 1; users != want {
		t.Errorf("%d user keys moved, want %d", users, want)
	}
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM chat_model_configs WHERE ai_provider_id IS NULL`).Scan(&configsWithoutProvider); err != nil {
		t.Fatal(err)
	}
	if configsWithoutProvider != 0 {
		t.Errorf("%d model configs have no ai_provider_id", configsWithoutProvider)
	}
	afterUp := newLayoutRows(t, pool)

	// Down to the legacy layout gives the legacy rows back.
	if _, err := m.DownTo(ctx, 1); err != nil {
		t.Fatalf("migrate down to 1: %v", err)
	}
	for _, table := range []string{"user_chat_provider_keys", "chat_model_configs", "chats", "users"} {
		if got := rowsOf(t, pool, table); got != legacyBefore[table] {
			t.Errorf("%s differs after up and down:\n--- before\n%s\n--- after\n%s", table, legacyBefore[table], got)
		}
	}
	assertLegacyProvidersEquivalent(t, pool, legacyBefore["chat_providers"])

	// And up again gives exactly the rows of the first cutover.
	if _, err := m.UpTo(ctx, 0); err != nil {
		t.Fatalf("migrate up again: %v", err)
	}
	if got := newLayoutRows(t, pool); got != afterUp {
		t.Fatalf("up → down → up changed the new layout:\n--- first up\n%s\n--- second up\n%s", afterUp, got)
	}
}

// assertLegacyProvidersEquivalent compares chat_providers after a round trip with the original.
// Flags come back in the canonical form of their byok_policy: combinations the policy does not
// distinguish (a fallback flag while user keys are off, say) are equal by what they do.
func assertLegacyProvidersEquivalent(t *testing.T, pool *pgxpool.Pool, before string) {
	t.Helper()
	ctx := context.Background()
	for i, f := range flagCombos {
		var apiKey string
		var keyID *string
		var central, allowUser, fallback bool
		if err := pool.QueryRow(ctx, `SELECT api_key, api_key_key_id, central_api_key_enabled, allow_user_api_key, allow_central_api_key_fallback
			FROM chat_providers WHERE id = $1 AND provider = $2`, providerID(i), f.typ).Scan(&apiKey, &keyID, &central, &allowUser, &fallback); err != nil {
			t.Fatalf("legacy provider %s after down: %v", f.typ, err)
		}
		if allowUser != f.allowUser {
			t.Errorf("%s: allow_user_api_key %v, want %v", f.typ, allowUser, f.allowUser)
		}
		policy := "disabled"
		if allowUser {
			policy = "required"
			if central && fallback {
				policy = "optional"
			}
		}
		if policy != f.wantPolicy {
			t.Errorf("%s: flags after down map to %s, want %s", f.typ, policy, f.wantPolicy)
		}
		hadKey := i%3 != 2
		if hadKey && central != f.central && f.wantPolicy != "optional" {
			t.Errorf("%s: central_api_key_enabled %v, want %v", f.typ, central, f.central)
		}
		if hadKey != (apiKey != "") {
			t.Errorf("%s: api_key %q after down (had a key: %v)", f.typ, apiKey, hadKey)
		}
		if hadKey && !strings.Contains(before, apiKey) {
			t.Errorf("%s: api_key after down is not the legacy value", f.typ)
		}
	}
}

func deref(s *string) string {
	if s == nil {
		return "NULL"
	}
	return *s
}
