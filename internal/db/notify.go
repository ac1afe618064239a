package db

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// ChangesChannel is the LISTEN/NOTIFY channel of migration 7's triggers.
const ChangesChannel = "resolverd_changes"

// Change is one committed change published by resolverd_notify_change (ids as text, the token
// hash as hex). Flush asks for everything to be dropped (a TRUNCATE).
type Change struct {
	Table      string `json:"table"`
	ID         string `json:"id"`
	ProviderID string `json:"provider_id"`
	UserID     string `json:"user_id"`
	TokenHash  string `json:"token_hash"`
	// Subject names a workload_identities row (migration 13).
	Subject string `json:"subject"`
	Flush   bool   `json:"flush"`
	Canary  string `json:"canary"`
	// Barrier marks a point in the stream: once a listener has seen it, it has applied every
	// change committed before it was sent (notifications arrive in commit order).
	Barrier string `json:"barrier"`
}

// ChangeHandler receives what the listener learns. Connected means the listener is (again)
// listening: anything may have changed while it was not, so a cache must drop everything then.
// Disconnected means changes may be missed from now on: a cache must stop serving.
type ChangeHandler interface {
	Changed(Change)
	Connected()
	Disconnected(err error)
}

// ListenerOptions tune how fast a broken listener is noticed.
type ListenerOptions struct {
	// CanaryEvery is how often the listener sends itself a notification on its own connection
	// (default 200ms); CanaryTimeout is how long it may take to arrive before the
	// listener is declared broken (default 600ms). A listener whose connection died silently is
	// noticed within about CanaryEvery + CanaryTimeout: the 1 second of docs/CONTRACT.md §5.
	CanaryEvery, CanaryTimeout time.Duration
	// RetryMax bounds the wait between reconnection attempts (default 2s).
	RetryMax time.Duration
}

// Listener keeps one dedicated connection listening on ChangesChannel (a pooled connection cannot
// hold a LISTEN; a connection pooler must give it a session-mode connection).
type Listener struct {
	pool    *pgxpool.Pool
	handler ChangeHandler
	log     *slog.Logger
	opts    ListenerOptions
	name    string
	seq     atomic.Uint64
	conn    atomic.Pointer[pgx.Conn] // the live listening connection, for tests that kill it
	barrier atomic.Pointer[string]   // the last barrier seen
}

// LastBarrier is the last barrier the listener has seen ("" before any).
func (l *Listener) LastBarrier() string {
	if b := l.barrier.Load(); b != nil {
		return *b
	}
	return ""
}

// SendBarrier publishes a barrier through pool.
func SendBarrier(ctx context.Context, pool *pgxpool.Pool, id string) error {
	payload, _ := json.Marshal(Change{Barrier: id})
	if _, err := pool.Exec(ctx, `SELECT pg_notify($1, $2)`, ChangesChannel, string(payload)); err != nil {
		return fmt.Errorf("send a barrier: %w", classify(err))
	}
	return nil
}

// NewListener returns a listener; Run starts it.
func NewListener(pool *pgxpool.Pool, h ChangeHandler, log *slog.Logger, opts ListenerOptions) *Listener {
	if opts.CanaryEvery <= 0 {
		opts.CanaryEvery = 200 * time.Millisecond
	}
	if opts.CanaryTimeout <= 0 {
		opts.CanaryTimeout = 600 * time.Millisecond
	}
	if opts.RetryMax <= 0 {
		opts.RetryMax = 2 * time.Second
	}
	return &Listener{pool: pool, handler: h, log: log, opts: opts, name: strconv.FormatInt(time.Now().UnixNano(), 36)}
}

// BackendPID is the PostgreSQL process of the listening connection (0 when not connected).
func (l *Listener) BackendPID() uint32 {
	if c := l.conn.Load(); c != nil {
		return c.PgConn().PID()
	}
	return 0
}

// Run listens until ctx ends, reconnecting after failures.
func (l *Listener) Run(ctx context.Context) {
	backoff := 50 * time.Millisecond
	for ctx.Err() == nil {
		start := time.Now()
		err := l.listen(ctx)
		if ctx.Err() != nil {
			return
		}
		l.handler.Disconnected(err)
		l.log.Warn("change listener lost; serving without the cache until it is back", "error", err)
		if time.Since(start) > 10*time.Second {
			backoff = 50 * time.Millisecond
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, l.opts.RetryMax)
	}
}

// listen holds one connection until it fails; it returns why.
func (l *Listener) listen(ctx context.Context) error {
	cfg := l.pool.Config().ConnConfig.Copy()
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	conn, err := pgx.ConnectConfig(cctx, cfg)
	cancel()
	if err != nil {
		return fmt.Errorf("connect the change listener: %w", classify(err))
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if _, err := conn.Exec(ctx, "LISTEN "+ChangesChannel); err != nil {
		return fmt.Errorf("listen on %s: %w", ChangesChannel, classify(err))
	}
	l.conn.Store(conn)
	defer l.conn.Store(nil)
	l.handler.Connected()

	var (
		pending   string    // the canary in flight
		sentAt    time.Time // when it was sent
		nextCheck = time.Now()
	)
	for {
		if time.Now().After(nextCheck) {
			if pending != "" && time.Since(sentAt) > l.opts.CanaryTimeout {
				return fmt.Errorf("the canary notification sent %s ago never arrived", time.Since(sentAt).Round(time.Millisecond))
			}
			if pending == "" {
				pending = l.name + ":" + strconv.FormatUint(l.seq.Add(1), 10)
				sentAt = time.Now()
				// On the listening connection itself: a busy pool must not delay the canary into a
				// false alarm, and a session receives its own notifications like everyone else's
				// (pgx keeps those that arrive during the statement for WaitForNotification).
				if err := l.sendCanary(ctx, conn, pending); err != nil {
					return fmt.Errorf("send the canary: %w", err)
				}
			}
			nextCheck = time.Now().Add(l.opts.CanaryEvery)
		}
		wctx, cancel := context.WithDeadline(ctx, nextCheck)
		n, err := conn.WaitForNotification(wctx)
		cancel()
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if errors.Is(err, context.DeadlineExceeded) && !conn.IsClosed() {
				continue
			}
			return fmt.Errorf("wait for notifications: %w", err)
		}
		var c Change
		if err := json.Unmarshal([]byte(n.Payload), &c); err != nil {
			l.log.Error("change listener: unreadable notification; dropping everything cached", "error", err)
			l.handler.Changed(Change{Flush: true})
			continue
		}
		if c.Canary != "" {
			if c.Canary == pending {
				pending = ""
			}
			continue
		}
		if c.Barrier != "" {
			l.barrier.Store(&c.Barrier)
			continue
		}
		l.handler.Changed(c)
	}
}

func (l *Listener) sendCanary(ctx context.Context, conn *pgx.Conn, id string) error {
	payload, _ := json.Marshal(Change{Canary: id})
	sctx, cancel := context.WithTimeout(ctx, l.opts.CanaryTimeout)
	defer cancel()
	_, err := conn.Exec(sctx, `SELECT pg_notify($1, $2)`, ChangesChannel, string(payload))
	return err
}
