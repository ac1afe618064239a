package operations_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/resolverd/resolverd/internal/db"
	"github.com/resolverd/resolverd/internal/keyring"
	"github.com/resolverd/resolverd/internal/pgtest"
	"github.com/resolverd/resolverd/internal/testenv"
	"github.com/resolverd/resolverd/pkg/secret"
	resolverv1 "github.com/resolverd/resolverd/proto/resolver/v1"
)

// TestOldFormatSecretsResolveUntilKeysRotateBindsThem: values sealed the way releases before schema
// version 10 sealed them (no associated data) still resolve; `keys rotate` (run while the server
// serves) re-seals them bound to their rows, the server then answers with the same plaintext and
// fingerprint, the CHECKs against plain secrets are validated, and a plain INSERT is refused.
func TestOldFormatSecretsResolveUntilKeysRotateBindsThem(t *testing.T) {
	ctx := context.Background()
	w := testenv.NewWorld(t, testenv.Options{})
	p := w.Provider("old-format", "openai", resolverv1.ByokPolicy_BYOK_POLICY_OPTIONAL)
	cfg := w.Config(p.Id, "gpt", false)
	withOwn, withoutOwn := w.User("has-own-key"), w.User("has-none")
	ownChat, centralChat := w.Chat(withOwn.Id, cfg.Id), w.Chat(withoutOwn.Id, cfg.Id)

	const centralPlain, ownPlain = "sk-old-format-central", "sk-old-format-own"
	centralID, ownID := uuid.New(), uuid.New()
	insert := func(sql string, id uuid.UUID, plain string, args ...any) string {
		t.Helper()
		sealed, kid, err := pgtest.Keyring.SealUnbound(secret.New(plain))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Pool.Exec(ctx, `INSERT INTO encryption_keys (id) VALUES ($1) ON CONFLICT DO NOTHING`, kid); err != nil {
			t.Fatal(err)
		}
		if _, err := w.Pool.Exec(ctx, sql, append([]any{id, sealed, kid}, args...)...); err != nil {
			t.Fatal(err)
		}
		return sealed
	}
	oldCentral := insert(`INSERT INTO ai_provider_keys (id, api_key, api_key_key_id, provider_id) VALUES ($1, $2, $3, $4)`, centralID, centralPlain, p.Id)
	oldOwn := insert(`INSERT INTO user_ai_provider_keys (id, api_key, api_key_key_id, user_id, ai_provider_id) VALUES ($1, $2, $3, $4, $5)`, ownID, ownPlain, withOwn.Id, p.Id)
	w.Sync(t)

	resolveAll := func(when string) map[string]string {
		t.Helper()
		fps := map[string]string{}
		for _, c := range []struct {
			chat, key, keyID string
		}{{ownChat.Id, ownPlain, ownID.String()}, {centralChat.Id, centralPlain, centralID.String()}} {
			res, err := w.Resolve(c.chat, "", resolverv1.Purpose_PURPOSE_CHAT)
			if err != nil {
				t.Fatalf("%s: %v", when, err)
			}
			if res.GetCredential().GetApiKey() != c.key || res.GetCredential().GetKeyId() != c.keyID || len(res.GetCredential().GetFingerprint()) != 16 {
				t.Fatalf("%s: key %s with fingerprint %q, want key %s and its plaintext", when, res.GetCredential().GetKeyId(), res.GetCredential().GetFingerprint(), c.keyID)
			}
			fps[c.keyID] = res.GetCredential().GetFingerprint()
		}
		return fps
	}
	before := resolveAll("old-format values")

	var out strings.Builder
	if err := db.New(w.Pool, pgtest.Keyring).RotateSecrets(ctx, db.Target{KeyID: pgtest.Keyring.IDs()[0], Format: keyring.FormatBound}, 500, &out); err != nil {
		t.Fatalf("keys rotate: %v\n%s", err, out.String())
	}
	for _, want := range []string{"ai_provider_keys: 1/1", "user_ai_provider_keys: 1/1", "are validated"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("keys rotate output lacks %q:\n%s", want, out.String())
		}
	}
	for table, row := range map[string]struct {
		id  uuid.UUID
		old string
	}{"ai_provider_keys": {centralID, oldCentral}, "user_ai_provider_keys": {ownID, oldOwn}} {
		var stored string
		var valid bool
		if err := w.Pool.QueryRow(ctx, `SELECT api_key FROM `+table+` WHERE id = $1`, row.id).Scan(&stored); err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(stored, keyring.BoundPrefix) || stored == row.old {
			t.Errorf("%s %s after keys rotate: %q, want a new value in the bound format", table, row.id, stored)
		}
		if err := w.Pool.QueryRow(ctx, `SELECT convalidated FROM pg_constraint WHERE conname = $1`, db.SealedConstraint(table)).Scan(&valid); err != nil || !valid {
			t.Errorf("%s after keys rotate: CHECK validated = %v (%v)", table, valid, err)
		}
	}
	w.Sync(t) // keys rotate's updates reach the server's cache like any other write
	after := resolveAll("after keys rotate")
	for id, fp := range before {
		if after[id] != fp {
			t.Errorf("the fingerprint of key %s changed with its format: %s → %s", id, fp, after[id])
		}
	}

	var pgErr *pgconn.PgError
	_, err := w.Pool.Exec(ctx, `INSERT INTO ai_provider_keys (id, provider_id, api_key) VALUES (gen_random_uuid(), $1, 'sk-plain')`, p.Id)
	if !errors.As(err, &pgErr) || pgErr.Code != "23514" || pgErr.ConstraintName != "ai_provider_keys_api_key_sealed" {
		t.Fatalf("a plain INSERT after keys rotate: %v", err)
	}
}
