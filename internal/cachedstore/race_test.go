package cachedstore_test

import (
	"context"
	"sync/atomic"
	"testing"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/resolverd/resolverd/internal/cachedstore"
	"github.com/resolverd/resolverd/internal/db"
	"github.com/resolverd/resolverd/internal/pgtest"
	"github.com/resolverd/resolverd/internal/resolve"
)

// midLoad runs a hook once a load's batch has been read, before the cache stores what it read:
// the moment a change's notification can slip in.
type midLoad struct {
	batches atomic.Int64
	hook    atomic.Pointer[func()]
}

func (m *midLoad) TraceQueryStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceQueryStartData) context.Context {
	return ctx
}
func (m *midLoad) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}
func (m *midLoad) TraceBatchStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceBatchStartData) context.Context {
	return ctx
}
func (m *midLoad) TraceBatchQuery(context.Context, *pgx.Conn, pgx.TraceBatchQueryData) {}
func (m *midLoad) TraceBatchEnd(context.Context, *pgx.Conn, pgx.TraceBatchEndData) {
	m.batches.Add(1)
	if h := m.hook.Swap(nil); h != nil {
		(*h)()
	}
}

// TestALoadThatRacesAChangeIsNotKept: a change committed (and notified) after a cold load read the
// database but before the cache kept the result must not leave the load's older state in memory;
// the next resolution reads again and sees the change. Without the race, the second resolution
// is served from memory.
func TestALoadThatRacesAChangeIsNotKept(t *testing.T) {
	ctx := context.Background()
	url := pgtest.NewDatabase(t)
	setup := db.New(pgtest.Connect(t, url), pgtest.Keyring)
	trace := &midLoad{}
	pool := pgtest.ConnectWith(t, url, func(c *pgxpool.Config) { c.ConnConfig.Tracer = trace })
	s := cachedstore.New(db.New(pool, pgtest.Keyring), cachedstore.Options{})
	s.Connected()

	p, err := setup.CreateProvider(ctx, resolve.Provider{ID: uuid.New(), Type: "openai", Name: "race", Enabled: true, BYOKPolicy: resolve.BYOKDisabled})
	if err != nil {
		t.Fatal(err)
	}
	c, err := setup.CreateModelConfig(ctx, resolve.ModelConfig{ID: uuid.New(), ProviderID: p.ID, Model: "m", Enabled: true, IsDefault: true, ContextLimit: 1000, Options: []byte("{}")})
	if err != nil {
		t.Fatal(err)
	}
	u := uuid.New()
	if _, err := setup.PutUser(ctx, u, "race-owner"); err != nil {
		t.Fatal(err)
	}
	enabledOf := func(chat uuid.UUID) bool {
		t.Helper()
		snap, err := s.ResolutionSnapshot(ctx, chat, uuid.Nil, db.Prefetch{})
		if err != nil {
			t.Fatal(err)
		}
		return snap.Configs[c.ID].Enabled
	}

	// No race: one load, then memory.
	calm := uuid.New()
	if _, err := setup.PutChat(ctx, calm, u, c.ID); err != nil {
		t.Fatal(err)
	}
	before := trace.batches.Load()
	if !enabledOf(calm) || !enabledOf(calm) {
		t.Fatal("the config should be enabled")
	}
	if n := trace.batches.Load() - before; n != 1 {
		t.Fatalf("%d loads for two resolutions of a calm chat, want 1", n)
	}

	// The race: the config is disabled (and its notification delivered) while the load that read
	// it enabled is on its way back.
	racy := uuid.New()
	if _, err := setup.PutChat(ctx, racy, u, c.ID); err != nil {
		t.Fatal(err)
	}
	s.Changed(db.Change{Table: "chats", ID: racy.String()}) // PutChat's own notification, delivered
	hook := func() {
		if _, err := setup.Pool().Exec(ctx, `UPDATE chat_model_configs SET enabled = false WHERE id = $1`, c.ID); err != nil {
			t.Error(err)
		}
		s.Changed(db.Change{Table: "chat_model_configs", ID: c.ID.String()})
	}
	trace.hook.Store(&hook)
	if !enabledOf(racy) {
		t.Fatal("the racing load read the config after the change")
	}
	if enabledOf(racy) {
		t.Fatal("the load that raced the change was kept: the disabled config is served as enabled")
	}
	if enabledOf(calm) {
		t.Fatal("another chat is served the config from before the change")
	}
}
