package main

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"

	"github.com/resolverd/resolverd/internal/db"
	"github.com/resolverd/resolverd/internal/keyring"
	"github.com/resolverd/resolverd/internal/pgtest"
	"github.com/resolverd/resolverd/internal/resolve"
	"github.com/resolverd/resolverd/internal/testenv"
	"github.com/resolverd/resolverd/pkg/secret"
	resolverv1 "github.com/resolverd/resolverd/proto/resolver/v1"
)

// cancelOnWrite cancels a context at the first write: an operator pressing Ctrl-C mid-run.
type cancelOnWrite struct {
	mu     sync.Mutex
	b      strings.Builder
	lines  int
	after  int
	cancel context.CancelFunc
}

func (c *cancelOnWrite) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.b.Write(p)
	c.lines += strings.Count(string(p), "\n")
	if c.lines >= c.after {
		c.cancel()
	}
	return len(p), nil
}

// TestKeysRotateThenServeWithOnlyTheNewKey: secrets sealed by key A (and a legacy plain row, and a
// value sealed by B in the format before version 10) are re-encrypted under B, bound to their rows,
// in batches; an interrupted run goes on when run again; the CHECK against plain secrets is then
// validated; and a server given only B serves every secret.
func TestKeysRotateThenServeWithOnlyTheNewKey(t *testing.T) {
	ctx := context.Background()
	// Version 9: plain rows can still be written, as the legacy cutover wrote them; migration 10
	// (no new plain secret) comes after the seeding.
	url := pgtest.NewEmptyDatabase(t)
	if code, _, errOut := cli(ctx, map[string]string{"RESOLVER_DATABASE_URL": url}, "migrate", "up", "--to", "9"); code != 0 {
		t.Fatal(errOut)
	}
	pool := pgtest.Connect(t, url)
	a, b := keyring.Generate(), keyring.Generate()
	ringA, _ := keyring.Parse(a)
	ringB, _ := keyring.Parse(b)
	// At version 9 only the legacy plain row is written, with SQL as the legacy cutover wrote it;
	// everything else is written through the store once the schema is current.
	legacyID := uuid.New()
	if _, err := pool.Exec(ctx, `INSERT INTO ai_providers (id, type, name, enabled) VALUES ($1, 'google', 'legacy', true)`, legacyID); err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(ctx, `INSERT INTO ai_provider_keys (id, provider_id, api_key) VALUES (gen_random_uuid(), $1, 'sk-rotate-legacy-plain')`, legacyID); err != nil {
		t.Fatal(err)
	}
	if code, _, errOut := cli(ctx, map[string]string{"RESOLVER_DATABASE_URL": url}, "migrate", "up"); code != 0 {
		t.Fatalf("migrate up with a plain legacy row: %s", errOut)
	}
	store := db.New(pool, ringA)

	// Ten providers with a central key each, ten users with a key for the first, one plain legacy key.
	var chats []uuid.UUID
	want := map[uuid.UUID]string{}
	owner := uuid.New()
	if _, err := store.PutUser(ctx, owner, "owner"); err != nil {
		t.Fatal(err)
	}
	for i := range 10 {
		p, err := store.CreateProvider(ctx, resolve.Provider{ID: uuid.New(), Type: "openai", Name: "p" + string(rune('a'+i)), Enabled: true, BYOKPolicy: resolve.BYOKDisabled})
		if err != nil {
			t.Fatal(err)
		}
		plain := "sk-rotate-central-" + p.Name
		if _, err := store.AddProviderKey(ctx, uuid.New(), p.ID, secret.New(plain), true); err != nil {
			t.Fatal(err)
		}
		u := uuid.New()
		if _, err := store.PutUser(ctx, u, "u"+p.Name); err != nil {
			t.Fatal(err)
		}
		if _, err := store.PutUserProviderKey(ctx, uuid.New(), u, p.ID, secret.New("sk-rotate-user-"+p.Name)); err != nil {
			t.Fatal(err)
		}
		c, err := store.CreateModelConfig(ctx, resolve.ModelConfig{ID: uuid.New(), ProviderID: p.ID, Model: "m", Enabled: true, ContextLimit: 10, Options: []byte("{}")})
		if err != nil {
			t.Fatal(err)
		}
		chat, err := store.PutChat(ctx, uuid.New(), owner, c.ID)
		if err != nil {
			t.Fatal(err)
		}
		chats = append(chats, chat.ID)
		want[chat.ID] = plain
	}
	lc, _ := store.CreateModelConfig(ctx, resolve.ModelConfig{ID: uuid.New(), ProviderID: legacyID, Model: "g", Enabled: true, ContextLimit: 10, Options: []byte("{}")})
	lchat, _ := store.PutChat(ctx, uuid.New(), owner, lc.ID)
	chats = append(chats, lchat.ID)
	want[lchat.ID] = "sk-rotate-legacy-plain"
	// Sealed by B already, but in the format before version 10: rotated for its format alone.
	unbound, err := store.CreateProvider(ctx, resolve.Provider{ID: uuid.New(), Type: "google", Name: "unbound", Enabled: true, BYOKPolicy: resolve.BYOKDisabled})
	if err != nil {
		t.Fatal(err)
	}
	old, oldKeyID, err := ringB.SealUnbound(secret.New("sk-rotate-unbound"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(ctx, `INSERT INTO encryption_keys (id) VALUES ($1) ON CONFLICT DO NOTHING`, oldKeyID); err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(ctx, `INSERT INTO ai_provider_keys (id, provider_id, api_key, api_key_key_id) VALUES (gen_random_uuid(), $1, $2, $3)`, unbound.ID, old, oldKeyID); err != nil {
		t.Fatal(err)
	}
	uc, _ := store.CreateModelConfig(ctx, resolve.ModelConfig{ID: uuid.New(), ProviderID: unbound.ID, Model: "u", Enabled: true, ContextLimit: 10, Options: []byte("{}")})
	uchat, _ := store.PutChat(ctx, uuid.New(), owner, uc.ID)
	chats = append(chats, uchat.ID)
	want[uchat.ID] = "sk-rotate-unbound"

	env := map[string]string{"RESOLVER_DATABASE_URL": url, "RESOLVER_ENCRYPTION_KEYS": b + "," + a}
	fingerprints := func(s *db.Store) map[uuid.UUID]string {
		keys, err := s.ListProviderKeys(ctx, uuid.Nil, db.Page[db.ProviderKeyPos]{})
		if err != nil {
			t.Fatal(err)
		}
		fpKey, err := s.FingerprintKey(ctx)
		if err != nil {
			t.Fatal(err)
		}
		out := map[uuid.UUID]string{}
		for _, k := range keys {
			out[k.ID] = secret.Fingerprint(fpKey, k.Secret)
		}
		return out
	}
	ringBA, _ := keyring.Parse(b + "," + a)
	before := fingerprints(db.New(pool, ringBA))

	// Interrupted after its first batch, then run again.
	ictx, cancel := context.WithCancel(ctx)
	out := &cancelOnWrite{after: 2, cancel: cancel}
	code := run(ictx, []string{"keys", "rotate", "--batch-size", "3"}, func(k string) string { return env[k] }, out, &strings.Builder{})
	cancel()
	if code != 1 || !strings.Contains(out.b.String(), "ai_provider_keys: 3/12") {
		t.Fatalf("interrupted run: code %d, output:\n%s", code, out.b.String())
	}
	code, stdout, errOut := cli(ctx, env, "keys", "rotate", "--batch-size", "3")
	if code != 0 {
		t.Fatalf("second run: code %d: %s", code, errOut)
	}
	for _, line := range []string{"ai_provider_keys: 9/9", "user_ai_provider_keys: 10/10", "done: every secret is sealed by key " + ringB.IDs()[0], ringA.IDs()[0],
		"no plain secret is left: the CHECKs ai_provider_keys_api_key_sealed, user_ai_provider_keys_api_key_sealed are validated\n"} {
		if !strings.Contains(stdout, line) {
			t.Errorf("output lacks %q:\n%s", line, stdout)
		}
	}
	var notB int
	if err := pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM ai_provider_keys WHERE api_key_key_id IS DISTINCT FROM $1) +
		(SELECT count(*) FROM user_ai_provider_keys WHERE api_key_key_id IS DISTINCT FROM $1)`, ringB.IDs()[0]).Scan(&notB); err != nil || notB != 0 {
		t.Fatalf("%d secrets not sealed by B (%v)", notB, err)
	}
	after := fingerprints(db.New(pool, ringB))
	if len(after) != 12 || fmt.Sprint(after) != fmt.Sprint(before) {
		t.Fatalf("fingerprints changed with the encryption key:\n%v\n%v", before, after)
	}
	var plainLeft int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM ai_provider_keys WHERE api_key LIKE 'sk-%'`).Scan(&plainLeft); err != nil {
		t.Fatal(err)
	}
	if plainLeft != 0 {
		t.Fatalf("%d plain secrets left", plainLeft)
	}
	var unboundLeft, notValid int
	if err := pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM ai_provider_keys WHERE api_key NOT LIKE 'v2:%') +
		(SELECT count(*) FROM user_ai_provider_keys WHERE api_key NOT LIKE 'v2:%')`).Scan(&unboundLeft); err != nil || unboundLeft != 0 {
		t.Fatalf("%d secrets not bound to their row (%v)", unboundLeft, err)
	}
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM pg_constraint WHERE conname LIKE '%_api_key_sealed' AND NOT convalidated`).Scan(&notValid); err != nil || notValid != 0 {
		t.Fatalf("%d CHECKs against plain secrets not validated (%v)", notValid, err)
	}
	// A third run has nothing to do and says the CHECKs already were validated.
	if code, stdout, errOut := cli(ctx, env, "keys", "rotate"); code != 0 || !strings.Contains(stdout, "they already were") || strings.Contains(stdout, "keys: ") {
		t.Fatalf("third run: code %d\n%s%s", code, stdout, errOut)
	}

	// A server with only B starts and serves every secret.
	code, tok, errOut := cli(ctx, env, "token", "create", "--name", "w", "--scope", "*")
	if code != 0 {
		t.Fatal(errOut)
	}
	addr := testenv.FreeAddr(t)
	sctx, stop := context.WithCancel(ctx)
	done := make(chan int, 1)
	var serveErr string
	go func() {
		c, _, e := cli(sctx, map[string]string{"RESOLVER_DATABASE_URL": url, "RESOLVER_ENCRYPTION_KEYS": b}, "serve", "--plaintext", "--listen", addr)
		serveErr = e
		done <- c
	}()
	defer func() {
		stop()
		if c := <-done; c != 0 {
			t.Errorf("serve exited %d: %s", c, serveErr)
		}
	}()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	client := resolverv1.NewResolverServiceClient(conn)
	rctx := metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+strings.TrimSpace(tok))
	for _, chat := range chats {
		var res *resolverv1.ResolveModelResponse
		deadline := time.Now().Add(20 * time.Second)
		for {
			res, err = client.ResolveModel(rctx, &resolverv1.ResolveModelRequest{ChatId: chat.String(), Purpose: resolverv1.Purpose_PURPOSE_CHAT})
			if err == nil || time.Now().After(deadline) {
				break
			}
			time.Sleep(50 * time.Millisecond) // serve is still starting
		}
		if err != nil || res.GetCredential().GetApiKey() != want[chat] {
			t.Fatalf("chat %s with only key B: %v %v", chat, res.GetCredential().GetApiKey(), err)
		}
	}
}
