package cachedstore_test

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/resolverd/resolverd/internal/apitoken"
	"github.com/resolverd/resolverd/internal/cachedstore"
	"github.com/resolverd/resolverd/internal/db"
	"github.com/resolverd/resolverd/internal/pgtest"
)

// tokenStores returns a caching store serving from memory (as once its listener is connected) and
// a plain store on another pool, to write as another replica or psql would: the caching store
// hears of those writes only when a test hands it their notification with Changed.
func tokenStores(t *testing.T, o cachedstore.Options, tracer pgx.QueryTracer) (*cachedstore.Store, *db.Store) {
	t.Helper()
	url := pgtest.NewDatabase(t)
	pool := pgtest.ConnectWith(t, url, func(c *pgxpool.Config) {
		c.MaxConns = 32
		if tracer != nil {
			c.ConnConfig.Tracer = tracer
		}
	})
	s := cachedstore.New(db.New(pool, pgtest.Keyring), o)
	s.Connected()
	return s, db.New(pgtest.Connect(t, url), pgtest.Keyring)
}

// createdNotice is the notification migration 7's trigger sends for a token row.
func createdNotice(id uuid.UUID, hash []byte) db.Change {
	return db.Change{Table: "api_tokens", ID: id.String(), TokenHash: hex.EncodeToString(hash)}
}

func mustCreate(t *testing.T, s interface {
	CreateToken(context.Context, uuid.UUID, string, []string, []byte, *time.Time) (db.Token, error)
}, name string) (uuid.UUID, []byte) {
	t.Helper()
	_, hash := apitoken.New()
	id := uuid.New()
	if _, err := s.CreateToken(context.Background(), id, name, []string{"chat:read"}, hash, nil); err != nil {
		t.Fatal(err)
	}
	return id, hash
}

func wantToken(t *testing.T, s *cachedstore.Store, hash []byte, want bool, what string) {
	t.Helper()
	_, ok, err := s.ActiveToken(context.Background(), hash)
	if err != nil || ok != want {
		t.Fatalf("%s: active %v (err %v), want %v", what, ok, err, want)
	}
}

// TestUnknownTokensAreRememberedByHash: repeating an unknown token costs one lookup, not one per
// call; the token's insert notification (another replica, `resolverd token create`) lets it in at
// once, and so does this replica's own CreateToken; the TTL ends a negative entry regardless.
func TestUnknownTokensAreRememberedByHash(t *testing.T) {
	// Long enough that no step below outlives it on a slow machine (the cache takes up to a
	// quarter off each TTL), short enough to wait out at the end.
	s, other := tokenStores(t, cachedstore.Options{TTL: 2 * time.Second}, nil)

	_, hash := apitoken.New()
	for range 50 {
		wantToken(t, s, hash, false, "a made-up token")
	}
	st := s.Stats()
	if st.TokenLookups != 1 || st.TokensNotFound != 1 || st.TokenNegativeHits != 49 {
		t.Fatalf("50 calls with one unknown token: %d lookups (%d found nothing), %d negative hits; want 1, 1, 49",
			st.TokenLookups, st.TokensNotFound, st.TokenNegativeHits)
	}

	// Created elsewhere: refused from memory until its notification arrives, then let in.
	id := uuid.New()
	if _, err := other.CreateToken(context.Background(), id, "late", []string{"chat:read"}, hash, nil); err != nil {
		t.Fatal(err)
	}
	wantToken(t, s, hash, false, "created, notification not yet delivered")
	s.Changed(createdNotice(id, hash))
	wantToken(t, s, hash, true, "created, notification delivered")

	// Created through this replica: no notification needed.
	_, mine := apitoken.New()
	wantToken(t, s, mine, false, "a token not yet created here")
	if _, err := s.CreateToken(context.Background(), uuid.New(), "mine", []string{"chat:read"}, mine, nil); err != nil {
		t.Fatal(err)
	}
	wantToken(t, s, mine, true, "a token this replica created")

	// The TTL (here the cache's 2 s, under NegativeTokenTTL) ends a negative entry.
	_, gone := apitoken.New()
	wantToken(t, s, gone, false, "another made-up token")
	before := s.Stats().TokenLookups
	time.Sleep(2100 * time.Millisecond)
	wantToken(t, s, gone, false, "the made-up token after the TTL")
	if n := s.Stats().TokenLookups - before; n != 1 {
		t.Fatalf("%d lookups after the negative entry's TTL, want 1", n)
	}
}

// TestLosingTheListenerDropsNegativeEntries: a token created while the listener was away (its
// notification missed) is let in once the listener is back, like any other change.
func TestLosingTheListenerDropsNegativeEntries(t *testing.T) {
	s, other := tokenStores(t, cachedstore.Options{}, nil)
	_, hash := apitoken.New()
	wantToken(t, s, hash, false, "not yet created")
	s.Disconnected(errors.New("the listener's connection died"))
	if _, err := other.CreateToken(context.Background(), uuid.New(), "missed", []string{"chat:read"}, hash, nil); err != nil {
		t.Fatal(err)
	}
	wantToken(t, s, hash, true, "created while the listener was away (read from PostgreSQL)")
	s.Connected()
	wantToken(t, s, hash, true, "created while the listener was away (listener back)")
}

// afterTokenQuery runs a hook once a token lookup has read the database, before the cache stores
// what it read: the moment a change's notification can slip in.
type afterTokenQuery struct{ hook atomic.Pointer[func()] }

func (a *afterTokenQuery) TraceQueryStart(ctx context.Context, _ *pgx.Conn, d pgx.TraceQueryStartData) context.Context {
	if strings.Contains(d.SQL, "FROM api_tokens") {
		return context.WithValue(ctx, ctxKey{}, true)
	}
	return ctx
}

func (a *afterTokenQuery) TraceQueryEnd(ctx context.Context, _ *pgx.Conn, _ pgx.TraceQueryEndData) {
	if ctx.Value(ctxKey{}) != nil {
		if h := a.hook.Swap(nil); h != nil {
			(*h)()
		}
	}
}

// TestANegativeLookupThatRacesACreateIsNotKept: a lookup that found nothing just before the token
// was created (and its notification delivered) must not leave "unknown" in memory.
func TestANegativeLookupThatRacesACreateIsNotKept(t *testing.T) {
	trace := &afterTokenQuery{}
	s, other := tokenStores(t, cachedstore.Options{}, trace)
	_, hash := apitoken.New()
	hook := func() {
		id := uuid.New()
		if _, err := other.CreateToken(context.Background(), id, "racer", []string{"chat:read"}, hash, nil); err != nil {
			t.Error(err)
		}
		s.Changed(createdNotice(id, hash))
	}
	trace.hook.Store(&hook)
	wantToken(t, s, hash, false, "looked up just before it was created")
	wantToken(t, s, hash, true, "the next call, after the creation's notification")
}

// TestATokenChangeDropsThatTokenOnly: revoking a token here, or a notified change to a token's
// row (scopes, expiry, revocation by psql or another replica), drops that token and leaves every
// other cached token in memory; a change that names no token drops them all.
func TestATokenChangeDropsThatTokenOnly(t *testing.T) {
	s, other := tokenStores(t, cachedstore.Options{}, nil)
	idA, a := mustCreate(t, s, "a")
	_, b := mustCreate(t, s, "b")
	idC, c := mustCreate(t, s, "c")
	for _, h := range [][]byte{a, b, c} {
		wantToken(t, s, h, true, "a fresh token")
	}
	lookups := func() uint64 { return s.Stats().TokenLookups }

	before := lookups()
	if err := s.RevokeToken(context.Background(), idA, nil); err != nil {
		t.Fatal(err)
	}
	wantToken(t, s, a, false, "revoked here")
	wantToken(t, s, b, true, "another token after a revocation")
	if n := lookups() - before; n != 1 {
		t.Fatalf("%d lookups after revoking a and calling with a and b, want 1 (a's)", n)
	}
	wantToken(t, s, a, false, "revoked here, again")
	if n := lookups() - before; n != 1 {
		t.Fatalf("the revoked token was looked up again: %d lookups, want 1", n)
	}

	// Elsewhere: psql narrows c's scopes; the notification names c's hash.
	if _, err := other.Pool().Exec(context.Background(), `UPDATE api_tokens SET scopes = '{}' WHERE id = $1`, idC); err != nil {
		t.Fatal(err)
	}
	before = lookups()
	s.Changed(createdNotice(idC, c))
	got, ok, err := s.ActiveToken(context.Background(), c)
	if err != nil || !ok || len(got.Scopes) != 0 {
		t.Fatalf("c after its scopes changed: %v %v %v, want no scopes", got.Scopes, ok, err)
	}
	wantToken(t, s, b, true, "another token after a change to c")
	if n := lookups() - before; n != 1 {
		t.Fatalf("%d lookups after a change to c and calls with c and b, want 1 (c's)", n)
	}

	// A change that names no token at all: nothing cached can be trusted.
	before = lookups()
	s.Changed(db.Change{Table: "api_tokens"})
	wantToken(t, s, b, true, "b after a change naming no token")
	if n := lookups() - before; n != 1 {
		t.Fatalf("%d lookups after a change naming no token, want 1", n)
	}
}

// blockUnseen holds every token lookup whose hash is not let through until release is closed,
// counting those it holds: a flood whose lookups never finish.
type blockUnseen struct {
	mu      sync.Mutex
	through [][]byte
	held    atomic.Int64
	release chan struct{}
}

func (b *blockUnseen) letThrough(h []byte) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.through = append(b.through, h)
}

func (b *blockUnseen) TraceQueryStart(ctx context.Context, _ *pgx.Conn, d pgx.TraceQueryStartData) context.Context {
	if !strings.Contains(d.SQL, "FROM api_tokens") || len(d.Args) == 0 {
		return ctx
	}
	h, _ := d.Args[0].([]byte)
	b.mu.Lock()
	pass := false
	for _, t := range b.through {
		pass = pass || bytes.Equal(t, h)
	}
	b.mu.Unlock()
	if !pass {
		b.held.Add(1)
		<-b.release
	}
	return ctx
}

func (b *blockUnseen) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}

// TestKnownTokensDoNotWaitForAFlood: with every place for never-seen hashes taken by lookups that
// do not finish (and more queued behind them), a token that was valid is still looked up at once
// when its entry was dropped — by a change to it, or by a flush — and so is a token created
// elsewhere whose notification arrived. A token this replica never heard of waits with the flood:
// nothing tells it from a made-up one before the lookup.
func TestKnownTokensDoNotWaitForAFlood(t *testing.T) {
	trace := &blockUnseen{release: make(chan struct{})}
	s, other := tokenStores(t, cachedstore.Options{}, trace)
	ctx := context.Background()
	_, known := mustCreate(t, other, "known")
	trace.letThrough(known)
	wantToken(t, s, known, true, "the known token before the flood") // in memory, and in the known set

	var flood sync.WaitGroup
	stopFlood := sync.OnceFunc(func() { close(trace.release); flood.Wait() })
	defer stopFlood()
	for range 3 * cachedstore.TokenLoadsAtOnce {
		flood.Add(1)
		go func() {
			defer flood.Done()
			_, madeUp := apitoken.New()
			_, _, _ = s.ActiveToken(ctx, madeUp)
		}()
	}
	for start := time.Now(); trace.held.Load() < cachedstore.TokenLoadsAtOnce; {
		if time.Since(start) > 10*time.Second {
			t.Fatalf("the flood took %d places, want %d", trace.held.Load(), cachedstore.TokenLoadsAtOnce)
		}
		time.Sleep(time.Millisecond)
	}

	within := func(what string, hash []byte) {
		t.Helper()
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		start := time.Now()
		if _, ok, err := s.ActiveToken(cctx, hash); !ok || err != nil {
			t.Fatalf("%s during the flood: %v %v", what, ok, err)
		}
		t.Logf("%s during the flood: looked up in %s", what, time.Since(start))
	}
	knownBefore := s.Stats().KnownTokenLookups
	s.Changed(createdNotice(uuid.Nil, known)) // a change to the known token drops its entry
	within("the known token after a change to it", known)
	s.Disconnected(errors.New("listener lost"))
	s.Connected()
	within("the known token after a flush", known)

	id := uuid.New()
	_, fresh := apitoken.New()
	trace.letThrough(fresh)
	if _, err := other.CreateToken(ctx, id, "fresh", []string{"chat:read"}, fresh, nil); err != nil {
		t.Fatal(err)
	}
	s.Changed(createdNotice(id, fresh))
	within("a token created elsewhere, notified", fresh)
	if n := s.Stats().KnownTokenLookups - knownBefore; n != 3 {
		t.Errorf("%d lookups in the known lane, want 3", n)
	}

	// Never heard of: it queues behind the flood until its caller gives up.
	_, unheard := mustCreate(t, other, "unheard")
	trace.letThrough(unheard)
	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	_, _, err := s.ActiveToken(short, unheard)
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("a token this replica never heard of, during the flood: %v, want to wait its turn", err)
	}
	stopFlood()
	if held := trace.held.Load(); held > 3*cachedstore.TokenLoadsAtOnce {
		t.Errorf("%d made-up lookups reached the database, want at most %d", held, 3*cachedstore.TokenLoadsAtOnce)
	}
	wantToken(t, s, unheard, true, "the token never heard of, after the flood")
}
