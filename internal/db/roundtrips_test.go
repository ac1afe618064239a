package db_test

import (
	"context"
	"sync/atomic"
	"testing"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/resolverd/resolverd/internal/db"
	"github.com/resolverd/resolverd/internal/dbauthz"
	"github.com/resolverd/resolverd/internal/errs"
	"github.com/resolverd/resolverd/internal/pgtest"
	"github.com/resolverd/resolverd/internal/rbac"
	"github.com/resolverd/resolverd/internal/resolve"
	"github.com/resolverd/resolverd/pkg/secret"
)

// roundTrips counts what a pool sends: single queries and batches (a batch is one round trip).
type roundTrips struct{ queries, batches atomic.Int64 }

func (r *roundTrips) TraceQueryStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceQueryStartData) context.Context {
	r.queries.Add(1)
	return ctx
}
func (r *roundTrips) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}
func (r *roundTrips) TraceBatchStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceBatchStartData) context.Context {
	r.batches.Add(1)
	return ctx
}
func (r *roundTrips) TraceBatchQuery(context.Context, *pgx.Conn, pgx.TraceBatchQueryData) {}
func (r *roundTrips) TraceBatchEnd(context.Context, *pgx.Conn, pgx.TraceBatchEndData)     {}

// TestResolutionRoundTrips pins how many round trips a resolution makes: one batch for the chat
// and every config it may need (with providers), then only the key reads the rules ask for, each
// at most once per provider.
func TestResolutionRoundTrips(t *testing.T) {
	ctx := context.Background()
	url := pgtest.NewDatabase(t)
	setup := db.New(pgtest.Connect(t, url), pgtest.Keyring)
	trips := &roundTrips{}
	traced := pgtest.ConnectWith(t, url, func(c *pgxpool.Config) { c.ConnConfig.Tracer = trips })
	tracedStore := db.New(traced, pgtest.Keyring)
	// The fingerprint key is read once per process (the server reads it at start).
	if _, err := tracedStore.FingerprintKey(ctx); err != nil {
		t.Fatal(err)
	}
	src := dbauthz.New(tracedStore)

	provider := func(name string, policy resolve.BYOKPolicy) uuid.UUID {
		p, err := setup.CreateProvider(ctx, resolve.Provider{ID: uuid.New(), Type: "openai", Name: name, Enabled: true, BYOKPolicy: policy})
		if err != nil {
			t.Fatal(err)
		}
		return p.ID
	}
	config := func(providerID uuid.UUID, enabled, isDefault bool) uuid.UUID {
		c, err := setup.CreateModelConfig(ctx, resolve.ModelConfig{ID: uuid.New(), ProviderID: providerID, Model: "m", Enabled: enabled, IsDefault: isDefault, ContextLimit: 1000, Options: []byte("{}")})
		if err != nil {
			t.Fatal(err)
		}
		return c.ID
	}
	central, optional, required := provider("central", resolve.BYOKDisabled), provider("optional", resolve.BYOKOptional), provider("required", resolve.BYOKRequired)
	for _, p := range []uuid.UUID{central, optional} {
		if _, err := setup.AddProviderKey(ctx, uuid.New(), p, secret.New("sk-central"), true); err != nil {
			t.Fatal(err)
		}
	}
	user := uuid.New()
	if _, err := setup.PutUser(ctx, user, "u"); err != nil {
		t.Fatal(err)
	}
	withKey := uuid.New()
	if _, err := setup.PutUser(ctx, withKey, "k"); err != nil {
		t.Fatal(err)
	}
	if _, err := setup.PutUserProviderKey(ctx, uuid.New(), withKey, optional, secret.New("sk-user")); err != nil {
		t.Fatal(err)
	}
	cCentral, cOptional, cRequired, cRequired2 := config(central, true, true), config(optional, true, false), config(required, true, false), config(required, true, false)
	cDisabled := config(central, false, false)
	chat := func(owner, model uuid.UUID) uuid.UUID {
		c, err := setup.PutChat(ctx, uuid.New(), owner, model)
		if err != nil {
			t.Fatal(err)
		}
		return c.ID
	}

	all := rbac.WithPrincipal(ctx, rbac.Principal{Scopes: []rbac.Scope{rbac.All}})
	cases := []struct {
		name           string
		chat, config   uuid.UUID
		purpose        resolve.Purpose
		wantQueries    int64
		wantReason     errs.Reason
		wantSourceUser bool
	}{
		{"central key", chat(user, cCentral), uuid.Nil, resolve.PurposeChat, 1, "", false},
		{"optional, user key", chat(withKey, cOptional), uuid.Nil, resolve.PurposeChat, 1, "", true},
		{"optional, no user key", chat(user, cOptional), uuid.Nil, resolve.PurposeChat, 2, "", false},
		{"disabled override falls back without key reads for it", chat(user, cCentral), cDisabled, resolve.PurposeSubagent, 1, "", false},
		{"required override, fallback to the same provider reads the user key once", chat(user, cRequired2), cRequired, resolve.PurposeSubagent, 1, errs.UserKeyRequired, false},
		{"disabled request falls back to the default", chat(user, cDisabled), uuid.Nil, resolve.PurposeChat, 1, "", false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			trips.queries.Store(0)
			trips.batches.Store(0)
			res, err := resolve.Resolve(all, src, resolve.Options{AllowBYOK: true}, resolve.Request{ChatID: c.chat, ModelConfigID: c.config, Purpose: c.purpose})
			if errs.ReasonOf(err) != c.wantReason {
				t.Fatalf("error %v, want reason %q", err, c.wantReason)
			}
			if err == nil && (res.Credential.Source == resolve.SourceUser) != c.wantSourceUser {
				t.Fatalf("credential source %v", res.Credential.Source)
			}
			if b, q := trips.batches.Load(), trips.queries.Load(); b != 1 || q != c.wantQueries {
				t.Fatalf("%d batches and %d queries, want 1 batch and %d queries", b, q, c.wantQueries)
			}
		})
	}
}
