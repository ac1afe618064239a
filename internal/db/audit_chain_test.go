package db_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/resolverd/resolverd/internal/auditchain"
	"github.com/resolverd/resolverd/internal/db"
	"github.com/resolverd/resolverd/internal/pgtest"
	"github.com/resolverd/resolverd/internal/resolve"
	"github.com/resolverd/resolverd/pkg/secret"
)

// verifyTrail walks the whole trail through the verifier.
func verifyTrail(t *testing.T, pool *pgxpool.Pool) (auditchain.Stats, error) {
	t.Helper()
	v := auditchain.NewVerifier(pgtest.Keyring)
	err := db.WalkAuditTrail(context.Background(), pool, time.Time{}, v.Add)
	return v.Stats, err
}

// TestEveryKindOfEventVerifies: each shape of record the stores write — every resolution state,
// awkward details, every admin change with its before and after values — reads back as the bytes
// its chain MACed.
func TestEveryKindOfEventVerifies(t *testing.T) {
	ctx := context.Background()
	pool := pgtest.NewPool(t)
	store := db.New(pool, pgtest.Keyring)
	if err := store.InsertAuditEvents(ctx, auditSamples()); err != nil {
		t.Fatal(err)
	}
	p, err := store.CreateProvider(ctx, resolve.Provider{ID: uuid.New(), Type: "openai", Name: "chained", Enabled: true, BYOKPolicy: resolve.BYOKOptional})
	if err != nil {
		t.Fatal(err)
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	_, err = store.UpdateProvider(ctx, p.ID, func(p *db.Provider) error { p.BaseURL = "https://b.example/v1"; p.DisplayName = "é \"x\""; return nil })
	must(err)
	k, err := store.AddProviderKey(ctx, uuid.New(), p.ID, secret.New("sk-chain-1"), true)
	must(err)
	_, err = store.RotateProviderKey(ctx, uuid.New(), p.ID, secret.New("sk-chain-2"))
	must(err)
	_, err = store.SetProviderKeyEnabled(ctx, k.ID, true)
	must(err)
	must(store.DeleteProviderKey(ctx, k.ID))
	c, err := store.CreateModelConfig(ctx, resolve.ModelConfig{ID: uuid.New(), ProviderID: p.ID, Model: "m", Enabled: true, IsDefault: true,
		ContextLimit: 10, Options: []byte(`{"temperature": 0.5, "nested": {"a": [1, "two"]}}`)})
	must(err)
	_, err = store.UpdateModelConfig(ctx, c.ID, func(c *db.ModelConfig) error { c.ContextLimit = 20; return nil })
	must(err)
	u := uuid.New()
	_, err = store.PutUser(ctx, u, "chain-user")
	must(err)
	_, err = store.PutUser(ctx, u, "chain-user-renamed")
	must(err)
	uk, err := store.PutUserProviderKey(ctx, uuid.New(), u, p.ID, secret.New("sk-chain-user-1"))
	must(err)
	_, err = store.PutUserProviderKey(ctx, uuid.New(), u, p.ID, secret.New("sk-chain-user-2"))
	must(err)
	chat := uuid.New()
	_, err = store.PutChat(ctx, chat, u, c.ID)
	must(err)
	_, err = store.PutChat(ctx, chat, u, uuid.Nil)
	must(err)
	must(store.DeleteUserProviderKey(ctx, uk.ID))
	tok, err := store.CreateToken(ctx, uuid.New(), "chain-token", []string{"chat:read"}, []byte("0123456789abcdef0123456789abcdef"), nil)
	must(err)
	must(store.RevokeToken(ctx, tok.ID, nil))
	must(store.DeleteModelConfig(ctx, c.ID))
	must(store.DeleteProvider(ctx, p.ID))
	must(store.DeleteUser(ctx, u))

	st, err := verifyTrail(t, pool)
	if err != nil {
		t.Fatal(err)
	}
	var n int64
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM audit_events`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if st.Events != n || st.Chains != 2 || st.Unchained != 0 {
		t.Fatalf("verified %+v of %d events, want all in 2 chains (batches, changes)", st, n)
	}
	// The changes say what changed, secrets by fingerprint only.
	var leaks int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM audit_events WHERE details::text LIKE '%sk-chain%'`).Scan(&leaks); err != nil || leaks != 0 {
		t.Fatalf("%d records hold a secret (%v)", leaks, err)
	}
	events, err := store.ListAuditEvents(ctx, db.AuditFilter{Action: "UpdateProvider", Limit: 10})
	if err != nil || len(events) != 1 {
		t.Fatalf("UpdateProvider events: %v, %v", events, err)
	}
	got := map[string]db.FieldChange{}
	for _, c := range events[0].Changes {
		got[c.Field] = c
	}
	if b := got["base_url"]; len(events[0].Changes) != 2 || b.Before != "" || b.After != "https://b.example/v1" || !b.HasBefore || !b.HasAfter ||
		got["display_name"].After != "é \"x\"" {
		t.Fatalf("UpdateProvider changes: %+v", events[0].Changes)
	}
}

// TestAFailedCommitNeitherAdvancesNorForksTheChain: a change whose commit fails leaves no record,
// and the changes after it go on in a new chain that verifies; so does a refused batch.
func TestAFailedCommitNeitherAdvancesNorForksTheChain(t *testing.T) {
	ctx := context.Background()
	pool := pgtest.NewPool(t)
	store := db.New(pool, pgtest.Keyring)
	// A deferred check that fails at commit, for one username only.
	if _, err := pool.Exec(ctx, `
CREATE FUNCTION refuse_at_commit() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF NEW.details->>'username' = 'refused-at-commit' THEN RAISE EXCEPTION 'refused at commit'; END IF;
  RETURN NULL;
END $$;
CREATE CONSTRAINT TRIGGER refuse_at_commit AFTER INSERT ON audit_events DEFERRABLE INITIALLY DEFERRED
FOR EACH ROW EXECUTE FUNCTION refuse_at_commit();`); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if _, err := store.PutUser(ctx, uuid.New(), fmt.Sprintf("before-%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := store.PutUser(ctx, uuid.New(), "refused-at-commit"); err == nil {
		t.Fatal("the refused commit succeeded")
	}
	events := auditSamples()
	events[2].Outcome = "bad\x00outcome"
	if err := store.InsertAuditEvents(ctx, events); err == nil {
		t.Fatal("a batch with a NUL was written")
	}
	for i := range 3 {
		if _, err := store.PutUser(ctx, uuid.New(), fmt.Sprintf("after-%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := store.InsertAuditEvents(ctx, auditSamples()[:3]); err != nil {
		t.Fatal(err)
	}
	st, err := verifyTrail(t, pool)
	if err != nil {
		t.Fatal(err)
	}
	if st.Events != 9 || st.Chains != 3 {
		t.Fatalf("verified %+v, want 9 events in 3 chains (changes before and after the failure, batches)", st)
	}
}

// TestConcurrentWritersKeepTheirChains: admin changes from many goroutines and batches from the
// writer interleave in the table; every chain still verifies.
func TestConcurrentWritersKeepTheirChains(t *testing.T) {
	ctx := context.Background()
	pool := pgtest.NewPool(t)
	stores := []*db.Store{db.New(pool, pgtest.Keyring), db.New(pool, pgtest.Keyring)} // two replicas
	var wg sync.WaitGroup
	errc := make(chan error, 100)
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s := stores[g%2]
			for i := range 10 {
				var err error
				if g%4 == 3 {
					err = s.InsertAuditEvents(ctx, auditSamples())
				} else {
					_, err = s.PutUser(ctx, uuid.New(), fmt.Sprintf("u-%d-%d", g, i))
				}
				if err != nil {
					errc <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errc)
	for err := range errc {
		t.Fatal(err)
	}
	st, err := verifyTrail(t, pool)
	if err != nil {
		t.Fatal(err)
	}
	// Store 0 wrote changes only; store 1 changes and batches.
	if want := int64(6*10 + 2*10*len(auditSamples())); st.Events != want || st.Chains != 3 {
		t.Fatalf("verified %+v, want %d events in 3 chains", st, want)
	}
}
