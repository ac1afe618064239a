package cachedstore_test

import (
	"context"
	"errors"
	"fmt"
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

func TestMain(m *testing.M) { pgtest.Main(m) }

// inFlight tracks how many token lookups run on the database at once.
type inFlight struct{ now, most atomic.Int64 }

type ctxKey struct{}

func (f *inFlight) TraceQueryStart(ctx context.Context, _ *pgx.Conn, d pgx.TraceQueryStartData) context.Context {
	if strings.Contains(d.SQL, "api_tokens") {
		n := f.now.Add(1)
		for m := f.most.Load(); n > m && !f.most.CompareAndSwap(m, n); m = f.most.Load() {
		}
		time.Sleep(5 * time.Millisecond) // a slow database: lookups pile up if nothing bounds them
		return context.WithValue(ctx, ctxKey{}, true)
	}
	return ctx
}

func (f *inFlight) TraceQueryEnd(ctx context.Context, _ *pgx.Conn, _ pgx.TraceQueryEndData) {
	if ctx.Value(ctxKey{}) != nil {
		f.now.Add(-1)
	}
}

// TestUnknownTokensCannotTakeThePool: each distinct made-up token is a database lookup (only a
// repeated one is answered from memory); however many arrive at once, at most TokenLoadsAtOnce run together, a known token served
// from memory is not held up by them, and a caller that gives up while waiting its turn is let go.
func TestUnknownTokensCannotTakeThePool(t *testing.T) {
	ctx := context.Background()
	url := pgtest.NewDatabase(t)
	trace := &inFlight{}
	pool := pgtest.ConnectWith(t, url, func(c *pgxpool.Config) { c.ConnConfig.Tracer, c.MaxConns = trace, 32 })
	store := db.New(pool, pgtest.Keyring)
	s := cachedstore.New(store, cachedstore.Options{})
	s.Connected() // as the listener does: serve from memory

	_, hash := apitoken.New()
	if _, err := store.CreateToken(ctx, uuid.New(), "known", []string{"chat:read"}, hash, nil); err != nil {
		t.Fatal(err)
	}
	if _, ok, err := s.ActiveToken(ctx, hash); !ok || err != nil { // now cached
		t.Fatalf("known token: %v %v", ok, err)
	}

	var (
		wg       sync.WaitGroup
		stop     = make(chan struct{})
		floodErr atomic.Value
	)
	stopFlood := sync.OnceFunc(func() { close(stop); wg.Wait() })
	defer stopFlood() // also on a failure below, before the pool closes
	for range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				_, madeUp := apitoken.New()
				if _, ok, err := s.ActiveToken(ctx, madeUp); ok || err != nil {
					floodErr.CompareAndSwap(nil, fmt.Sprintf("a made-up token: ok %v, err %v", ok, err))
					return
				}
			}
		}()
	}
	time.Sleep(200 * time.Millisecond)
	start := time.Now()
	for range 100 {
		if _, ok, err := s.ActiveToken(ctx, hash); !ok || err != nil {
			t.Fatalf("known token during the flood: %v %v", ok, err)
		}
	}
	knownTook := time.Since(start)
	short, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	_, madeUp := apitoken.New()
	_, _, waitErr := s.ActiveToken(short, madeUp)
	cancel()
	stopFlood()
	if e := floodErr.Load(); e != nil {
		t.Fatal(e)
	}

	if most := trace.most.Load(); most > cachedstore.TokenLoadsAtOnce || most < 2 {
		t.Errorf("at most %d token lookups ran at once, want between 2 and %d", most, cachedstore.TokenLoadsAtOnce)
	}
	// Served from memory they take about a millisecond; queued behind the flood (about 60 lookups
	// of 5 ms or more, 4 at a time) they would take seconds.
	if knownTook > time.Second {
		t.Errorf("100 lookups of a cached token took %s during the flood", knownTook)
	}
	if !errors.Is(waitErr, context.DeadlineExceeded) {
		t.Errorf("a caller whose deadline passed while waiting its turn got %v", waitErr)
	}
}
