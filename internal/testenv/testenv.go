// Package testenv runs a real resolverd gRPC server for a test: a fresh migrated database (pgtest),
// the production server wiring (authentication, scope checks, interceptors), a loopback listener and
// a client connection. Tests drive it only through gRPC; the pool is exposed to act as another
// writer (psql, another replica) and to check what was stored, never to read around the server.
//
// Besides the server (New, Env) it holds what the end-to-end suites of internal/e2e share: World,
// which builds fixtures through AdminService; WantReason, ErrorInfo and BadRequest, which read the
// error details of a refused call; and Env.TablesSnapshot, which proves a refused call changed
// nothing. A package using it calls pgtest.Main from its TestMain.
package testenv

import (
	"bytes"
	"context"
	"log/slog"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"

	"github.com/resolverd/resolverd/internal/apitoken"
	"github.com/resolverd/resolverd/internal/db"
	"github.com/resolverd/resolverd/internal/pgtest"
	"github.com/resolverd/resolverd/internal/rbac"
	"github.com/resolverd/resolverd/internal/server"
	resolverv1 "github.com/resolverd/resolverd/proto/resolver/v1"
)

// Options change the server under test.
type Options struct {
	// DenyBYOK turns the deployment's --allow-byok off.
	DenyBYOK bool
	// DatabaseURL uses an existing database instead of a fresh one.
	DatabaseURL string
	// AuditRetention is the server's --audit-retention (0 keeps events forever).
	AuditRetention time.Duration
	// Configure, when set, changes the server's configuration before it is built.
	Configure func(*server.Config)
	// ClientCreds are the test client's transport credentials (default: plaintext).
	ClientCreds credentials.TransportCredentials
}

// Env is a running server and clients for it.
type Env struct {
	// Server is the server under test (for GetServiceInfo).
	Server   *server.Server
	Pool     *pgxpool.Pool
	Addr     string
	Conn     *grpc.ClientConn
	Admin    resolverv1.AdminServiceClient
	Resolver resolverv1.ResolverServiceClient
	// AdminToken holds scope "*"; WorkerToken exactly rbac.WorkerScopes.
	AdminToken, WorkerToken string
	// Logs is everything the server logged.
	Logs *SyncBuffer
}

// New starts a server for t, stopped when t ends.
func New(t testing.TB, opts Options) *Env {
	t.Helper()
	url := opts.DatabaseURL
	if url == "" {
		url = pgtest.NewDatabase(t)
	}
	pool := pgtest.Connect(t, url)
	logs := &SyncBuffer{}
	log := slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	ctx := context.Background()
	cfg := server.Config{
		AllowBYOK: !opts.DenyBYOK, Reflection: true, Logger: log, HealthInterval: 200 * time.Millisecond,
		AuditRetention: opts.AuditRetention,
		// A loaded 2-core CI machine under -race can stall a process for more than production's
		// 600 ms, and a missed canary flushes the cache, which tests of warm paths would see as
		// flakes. Tests of the canary itself set production's values (TestASilentListenerIsNoticed).
		Listener: db.ListenerOptions{CanaryTimeout: 3 * time.Second},
	}
	if opts.Configure != nil {
		opts.Configure(&cfg)
	}
	srv, err := server.New(ctx, pool, pgtest.Keyring, cfg)
	if err != nil {
		t.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	// The lifecycle serve and dev use; the cleanup below ends it as SIGTERM would.
	runCtx, stop := context.WithCancel(ctx)
	served := make(chan error, 1)
	go func() { served <- srv.Run(runCtx, server.Listeners{API: lis}, 5*time.Second) }()
	creds := opts.ClientCreds
	if creds == nil {
		creds = insecure.NewCredentials()
	}
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(creds))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		conn.Close()
		stop()
		if err := <-served; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	// Tests write as "psql" and then Sync: the change listener must be listening first.
	for start := time.Now(); !srv.CacheStats().Live; {
		if time.Since(start) > 10*time.Second {
			t.Fatal("the server's change listener did not connect within 10s")
		}
		time.Sleep(5 * time.Millisecond)
	}
	e := &Env{
		Server: srv, Pool: pool, Addr: lis.Addr().String(), Conn: conn, Logs: logs,
		Admin: resolverv1.NewAdminServiceClient(conn), Resolver: resolverv1.NewResolverServiceClient(conn),
	}
	e.AdminToken = e.bootstrapToken(t, "test-admin", rbac.All)
	e.WorkerToken = e.Token(t, "test-worker", rbac.WorkerScopes...)
	return e
}

// bootstrapToken stores a token directly, as `resolverd token create` does: the first admin token
// cannot come from the API.
func (e *Env) bootstrapToken(t testing.TB, name string, scopes ...rbac.Scope) string {
	t.Helper()
	tok, hash := apitoken.New()
	names := make([]string, len(scopes))
	for i, s := range scopes {
		names[i] = string(s)
	}
	if _, err := db.New(e.Pool, pgtest.Keyring).CreateToken(context.Background(), uuid.New(), name, names, hash, nil); err != nil {
		t.Fatal(err)
	}
	return tok.Reveal()
}

// Token creates a token with scopes through AdminService (as the admin) and returns it. No scopes
// gives a token that authenticates but may do nothing.
func (e *Env) Token(t testing.TB, name string, scopes ...rbac.Scope) string {
	t.Helper()
	if len(scopes) == 0 {
		return e.bootstrapToken(t, name)
	}
	names := make([]string, len(scopes))
	for i, s := range scopes {
		names[i] = string(s)
	}
	resp, err := e.Admin.CreateToken(e.As(e.AdminToken), &resolverv1.CreateTokenRequest{Name: name, Scopes: names})
	if err != nil {
		t.Fatalf("create token %s: %v", name, err)
	}
	return resp.GetToken()
}

// Sync returns once the server has applied every change committed before the call: what a test
// needs after writing with the pool as "psql" (the server learns of such changes by notification;
// docs/CONTRACT.md §5 gives it a second, which Sync also enforces).
func (e *Env) Sync(t testing.TB) {
	t.Helper()
	id := uuid.NewString()
	start := time.Now()
	if err := db.SendBarrier(context.Background(), e.Pool, id); err != nil {
		t.Fatal(err)
	}
	for e.Server.LastBarrier() != id {
		if time.Since(start) > time.Second {
			t.Fatalf("the server had not applied a change after 1s (docs/CONTRACT.md §5)")
		}
		time.Sleep(time.Millisecond)
	}
}

// As returns a context that calls with token.
func (e *Env) As(token string) context.Context {
	return metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer "+token)
}

// AsAdmin calls with the admin token.
func (e *Env) AsAdmin() context.Context { return e.As(e.AdminToken) }

// AsWorker calls with the worker token.
func (e *Env) AsWorker() context.Context { return e.As(e.WorkerToken) }

// FreeAddr returns a loopback address nobody listens on (for a server a test starts itself).
func FreeAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// SyncBuffer is a bytes.Buffer safe for concurrent writers.
type SyncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *SyncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *SyncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// Within polls check until it returns nil and says how long that took, failing t once limit has
// passed (what names the awaited state in the failure). The whole-server suites wait with it for
// what happens asynchronously: change notifications (docs/CONTRACT.md §5: within a second), the
// batching audit writer.
func Within(t testing.TB, limit time.Duration, what string, check func() error) time.Duration {
	t.Helper()
	start := time.Now()
	for {
		err := check()
		if err == nil {
			return time.Since(start)
		}
		if time.Since(start) > limit {
			t.Fatalf("%s: not within %s: %v", what, limit, err)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
