package cachedstore_test

import (
	"context"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/resolverd/resolverd/internal/cachedstore"
	"github.com/resolverd/resolverd/internal/db"
	"github.com/resolverd/resolverd/internal/pgtest"
	"github.com/resolverd/resolverd/internal/resolve"
)

// TestSnapshotsServedAgainOnlyWhileExact: a warm chat's snapshot is built once and served again,
// but never after a change (whatever it names), once a part expired, for another requested config,
// or while the listener is away.
func TestSnapshotsServedAgainOnlyWhileExact(t *testing.T) {
	ctx := context.Background()
	url := pgtest.NewDatabase(t)
	setup := db.New(pgtest.Connect(t, url), pgtest.Keyring)
	trace := &midLoad{}
	pool := pgtest.ConnectWith(t, url, func(c *pgxpool.Config) { c.ConnConfig.Tracer = trace })
	// Long enough that no step below outlives it on a slow machine (the cache takes up to a
	// quarter off each TTL), short enough to wait out for the expiry step.
	const ttl = 2 * time.Second
	s := cachedstore.New(db.New(pool, pgtest.Keyring), cachedstore.Options{TTL: ttl})
	s.Connected()

	p, err := setup.CreateProvider(ctx, resolve.Provider{ID: uuid.New(), Type: "openai", Name: "memo", Enabled: true, BYOKPolicy: resolve.BYOKDisabled})
	if err != nil {
		t.Fatal(err)
	}
	cfg := func(model string, isDefault bool) uuid.UUID {
		c, err := setup.CreateModelConfig(ctx, resolve.ModelConfig{ID: uuid.New(), ProviderID: p.ID, Model: model, Enabled: true,
			IsDefault: isDefault, ContextLimit: 1000, Options: []byte("{}")})
		if err != nil {
			t.Fatal(err)
		}
		return c.ID
	}
	own, other := cfg("own", true), cfg("other", false)
	u, chat := uuid.New(), uuid.New()
	if _, err := setup.PutUser(ctx, u, "memo-owner"); err != nil {
		t.Fatal(err)
	}
	if _, err := setup.PutChat(ctx, chat, u, own); err != nil {
		t.Fatal(err)
	}
	snapshot := func(requested uuid.UUID) (*resolve.Snapshot, int64) {
		t.Helper()
		before := trace.batches.Load()
		snap, err := s.ResolutionSnapshot(ctx, chat, requested, db.Prefetch{})
		if err != nil {
			t.Fatal(err)
		}
		return snap, trace.batches.Load() - before
	}

	if _, loads := snapshot(uuid.Nil); loads != 1 {
		t.Fatalf("a cold chat took %d loads, want 1", loads)
	}
	first, loads := snapshot(uuid.Nil)
	if again, more := snapshot(uuid.Nil); loads+more != 0 || again != first {
		t.Fatalf("a warm chat: %d loads, served the same snapshot again: %v", loads+more, again == first)
	}

	// Another requested config: its own snapshot, with that config.
	if snap, loads := snapshot(other); loads != 1 || snap == first || snap.Configs[other] == nil {
		t.Fatalf("requesting another config: %d loads, snapshot %+v", loads, snap)
	}
	if snap, loads := snapshot(other); loads != 0 || snap.Configs[other] == nil {
		t.Fatalf("requesting it again: %d loads, snapshot %+v", loads, snap)
	}

	// A change anywhere (here a token, which no snapshot holds): built again from memory, equal.
	prev, _ := snapshot(uuid.Nil)
	s.Changed(db.Change{Table: "api_tokens", ID: uuid.NewString()})
	if snap, loads := snapshot(uuid.Nil); loads != 0 || snap == prev || snap.Configs[own].Model != "own" {
		t.Fatalf("after an unrelated change: %d loads, a new snapshot: %v", loads, snap != prev)
	}

	// A change to the chat's config: the change shows on the very next call.
	if _, err := setup.Pool().Exec(ctx, `UPDATE chat_model_configs SET model = 'renamed' WHERE id = $1`, own); err != nil {
		t.Fatal(err)
	}
	s.Changed(db.Change{Table: "chat_model_configs", ID: own.String()})
	if snap, _ := snapshot(uuid.Nil); snap.Configs[own].Model != "renamed" {
		t.Fatalf("after the config changed the snapshot still says %q", snap.Configs[own].Model)
	}

	// Expiry: a part past its TTL is read again, not served from the snapshot built before.
	snapshot(uuid.Nil)
	time.Sleep(ttl + 50*time.Millisecond)
	if _, loads := snapshot(uuid.Nil); loads != 1 {
		t.Fatalf("after the TTL: %d loads, want 1", loads)
	}

	// Without the listener nothing is served from memory.
	snapshot(uuid.Nil)
	s.Disconnected(nil)
	if _, loads := snapshot(uuid.Nil); loads != 1 {
		t.Fatalf("with the listener away: %d loads, want 1", loads)
	}
}

// BenchmarkWarmSnapshot: what a warm resolution reads before deciding, from memory.
func BenchmarkWarmSnapshot(b *testing.B) {
	ctx := context.Background()
	st := db.New(pgtest.NewPool(b), pgtest.Keyring)
	s := cachedstore.New(st, cachedstore.Options{})
	s.Connected()
	p, err := st.CreateProvider(ctx, resolve.Provider{ID: uuid.New(), Type: "openai", Name: "bench", Enabled: true, BYOKPolicy: resolve.BYOKOptional})
	if err != nil {
		b.Fatal(err)
	}
	c, err := st.CreateModelConfig(ctx, resolve.ModelConfig{ID: uuid.New(), ProviderID: p.ID, Model: "m", Enabled: true, IsDefault: true, ContextLimit: 1000, Options: []byte("{}")})
	if err != nil {
		b.Fatal(err)
	}
	u, chat := uuid.New(), uuid.New()
	if _, err := st.PutUser(ctx, u, "bench"); err != nil {
		b.Fatal(err)
	}
	if _, err := st.PutChat(ctx, chat, u, c.ID); err != nil {
		b.Fatal(err)
	}
	if _, err := s.ResolutionSnapshot(ctx, chat, uuid.Nil, db.Prefetch{}); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.ResolutionSnapshot(ctx, chat, uuid.Nil, db.Prefetch{}); err != nil {
			b.Fatal(err)
		}
	}
}
