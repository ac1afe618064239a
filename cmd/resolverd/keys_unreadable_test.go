package main

import (
	"context"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/resolverd/resolverd/internal/db"
	"github.com/resolverd/resolverd/internal/keyring"
	"github.com/resolverd/resolverd/internal/pgtest"
	"github.com/resolverd/resolverd/internal/resolve"
	"github.com/resolverd/resolverd/pkg/secret"
)

// TestKeysRotateNamesTheRowThatDoesNotOpen: a secret keys rotate cannot open — sealed by a key it
// was not given, or edited in place — stops the run in one line naming the row and saying what to
// do (give the key that sealed it, or delete or replace that key: docs/CONTRACT.md §8.6), never
// in a server's words; nothing of its batch is changed, and the run goes on once it is fixed.
func TestKeysRotateNamesTheRowThatDoesNotOpen(t *testing.T) {
	ctx := context.Background()
	url := pgtest.NewDatabase(t)
	pool := pgtest.Connect(t, url)
	a, b, c := keyring.Generate(), keyring.Generate(), keyring.Generate()
	ringA, _ := keyring.Parse(a)
	store := db.New(pool, ringA)
	p, err := store.CreateProvider(ctx, resolve.Provider{ID: uuid.New(), Type: "openai", Name: "p", Enabled: true, BYOKPolicy: resolve.BYOKDisabled})
	if err != nil {
		t.Fatal(err)
	}
	k, err := store.AddProviderKey(ctx, uuid.New(), p.ID, secret.New("sk-unreadable"), true)
	if err != nil {
		t.Fatal(err)
	}

	// The wrong old key: the run cannot open what A sealed.
	code, out, errOut := cli(ctx, map[string]string{"RESOLVER_DATABASE_URL": url, "RESOLVER_ENCRYPTION_KEYS": b, "RESOLVER_FROM_ENCRYPTION_KEYS": c},
		"keys", "rotate")
	if code != 1 || strings.Count(errOut, "\n") != 1 || !strings.Contains(errOut, k.ID.String()) ||
		!strings.Contains(errOut, "--from-encryption-keys") || !strings.Contains(errOut, "delete or replace") ||
		strings.Contains(errOut, "server") || strings.Contains(errOut, "not served") {
		t.Fatalf("keys rotate without the key that sealed a row: code %d\n%s%s", code, out, errOut)
	}
	if got := scalar[string](t, pool, `SELECT api_key_key_id FROM ai_provider_keys WHERE id = $1`, k.ID); got != ringA.IDs()[0] {
		t.Fatalf("the refused run changed the row's key to %s", got)
	}

	// With A given, the run goes on.
	if code, out, errOut := cli(ctx, map[string]string{"RESOLVER_DATABASE_URL": url, "RESOLVER_ENCRYPTION_KEYS": b, "RESOLVER_FROM_ENCRYPTION_KEYS": a},
		"keys", "rotate"); code != 0 {
		t.Fatalf("keys rotate with the right old key: code %d\n%s%s", code, out, errOut)
	}

	// A value copied from another row (edited with psql) does not open where it now is.
	k2, err := db.New(pool, parseRing(t, b)).AddProviderKey(ctx, uuid.New(), p.ID, secret.New("sk-other"), false)
	if err != nil {
		t.Fatal(err)
	}
	exec(t, pool, `UPDATE ai_provider_keys SET api_key = (SELECT api_key FROM ai_provider_keys WHERE id = $1) WHERE id = $2`, k.ID, k2.ID)
	code, out, errOut = cli(ctx, map[string]string{"RESOLVER_DATABASE_URL": url, "RESOLVER_ENCRYPTION_KEYS": c, "RESOLVER_FROM_ENCRYPTION_KEYS": b},
		"keys", "rotate")
	if code != 1 || strings.Count(errOut, "\n") != 1 || !strings.Contains(errOut, k2.ID.String()) ||
		!strings.Contains(errOut, "edited outside resolverd") || !strings.Contains(errOut, "delete or replace") {
		t.Fatalf("keys rotate over a value edited in place: code %d\n%s%s", code, out, errOut)
	}
}

func parseRing(t *testing.T, keys string) *keyring.Keyring {
	t.Helper()
	kr, err := keyring.Parse(keys)
	if err != nil {
		t.Fatal(err)
	}
	return kr
}
