package operations_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/resolverd/resolverd/internal/apitoken"
	"github.com/resolverd/resolverd/internal/db"
	"github.com/resolverd/resolverd/internal/pgcluster"
	"github.com/resolverd/resolverd/internal/pgtest"
	"github.com/resolverd/resolverd/internal/resolve"
	"github.com/resolverd/resolverd/internal/server"
	"github.com/resolverd/resolverd/pkg/secret"
	resolverv1 "github.com/resolverd/resolverd/proto/resolver/v1"
)

// call is one resolution of the load.
type call struct {
	start, end time.Time
	err        error
}

// TestDatabaseOutage stops the server's PostgreSQL under load and starts it again: calls fail
// fast with DATABASE_UNAVAILABLE (nothing is served from memory it cannot prove fresh), health
// turns NOT_SERVING, and everything recovers without a restart — as the real grpc-health-probe
// sees it too.
func TestDatabaseOutage(t *testing.T) {
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "pg")
	for d := filepath.Dir(dir); d != os.TempDir() && d != "/"; d = filepath.Dir(d) {
		_ = os.Chmod(d, 0o711) // the cluster may run as the postgres user
	}
	cluster, err := pgcluster.Start(ctx, pgcluster.Options{DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	port := cluster.Port()
	defer func() {
		if cluster != nil { // nil when the restart below failed
			cluster.Stop()
		}
	}()
	admin, err := pgx.Connect(ctx, cluster.URL("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := admin.Exec(ctx, "CREATE DATABASE outage"); err != nil {
		t.Fatal(err)
	}
	admin.Close(ctx)
	url := cluster.URL("outage")
	pool, err := db.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	mig, err := db.NewMigrator(pool, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := mig.UpTo(ctx, 0); err != nil {
		t.Fatal(err)
	}
	mig.Close()

	// Seed with the store (the server is not up yet) and mint a worker token.
	st := db.New(pool, pgtest.Keyring)
	p, _ := st.CreateProvider(ctx, resolve.Provider{ID: uuid.New(), Type: "openai", Name: "o", Enabled: true, BYOKPolicy: resolve.BYOKDisabled})
	if _, err := st.AddProviderKey(ctx, uuid.New(), p.ID, secret.New("sk-outage"), true); err != nil {
		t.Fatal(err)
	}
	cfg, _ := st.CreateModelConfig(ctx, resolve.ModelConfig{ID: uuid.New(), ProviderID: p.ID, Model: "m", Enabled: true, IsDefault: true, ContextLimit: 10, Options: []byte("{}")})
	u := uuid.New()
	if _, err := st.PutUser(ctx, u, "u"); err != nil {
		t.Fatal(err)
	}
	chat, err := st.PutChat(ctx, uuid.New(), u, cfg.ID)
	if err != nil {
		t.Fatal(err)
	}
	tok, hash := apitoken.New()
	if _, err := st.CreateToken(ctx, uuid.New(), "w", []string{"*"}, hash, nil); err != nil {
		t.Fatal(err)
	}

	srv, err := server.New(ctx, pool, pgtest.Keyring, server.Config{Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		HealthInterval: 200 * time.Millisecond, CallTimeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(lis) //nolint:errcheck // ends with Shutdown
	defer func() {
		sctx, cancel := context.WithTimeout(ctx, 15*time.Second)
		defer cancel()
		srv.Shutdown(sctx)
	}()
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	client := resolverv1.NewResolverServiceClient(conn)
	health := healthpb.NewHealthClient(conn)
	auth := metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+tok.Reveal())
	probe := func() string {
		bin := os.Getenv("RESOLVER_GRPC_HEALTH_PROBE")
		if bin == "" {
			return ""
		}
		// A NOT_SERVING answer exits non-zero by design; a probe that could not run at all is a
		// broken test, not an answer.
		out, err := exec.Command(bin, "-addr="+lis.Addr().String(), "-connect-timeout=2s", "-rpc-timeout=2s").CombinedOutput()
		var exit *exec.ExitError
		if err != nil && !errors.As(err, &exit) {
			t.Fatalf("run grpc-health-probe %s: %v", bin, err)
		}
		return strings.TrimSpace(string(out))
	}
	waitHealth := func(want healthpb.HealthCheckResponse_ServingStatus, within time.Duration) time.Duration {
		t.Helper()
		start := time.Now()
		for {
			r, err := health.Check(ctx, &healthpb.HealthCheckRequest{})
			if err == nil && r.GetStatus() == want {
				return time.Since(start)
			}
			if time.Since(start) > within {
				t.Fatalf("health not %v after %s (%v %v)", want, within, r.GetStatus(), err)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	waitHealth(healthpb.HealthCheckResponse_SERVING, 5*time.Second)
	if out := probe(); out != "" && !strings.Contains(out, "status: SERVING") {
		t.Fatalf("grpc-health-probe before the outage: %s", out)
	}

	// Load: four callers resolving the chat all along.
	var (
		mu    sync.Mutex
		calls []call
		stop  atomic.Bool
		wg    sync.WaitGroup
	)
	req := &resolverv1.ResolveModelRequest{ChatId: chat.ID.String(), Purpose: resolverv1.Purpose_PURPOSE_CHAT}
	stopLoad := sync.OnceFunc(func() { stop.Store(true); wg.Wait() })
	defer stopLoad() // also when the test fails before the load is stopped below
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stop.Load() {
				c := call{start: time.Now()}
				_, c.err = client.ResolveModel(auth, req)
				c.end = time.Now()
				mu.Lock()
				calls = append(calls, c)
				mu.Unlock()
				time.Sleep(2 * time.Millisecond)
			}
		}()
	}
	time.Sleep(500 * time.Millisecond)

	down := time.Now()
	if err := cluster.Stop(); err != nil {
		t.Fatal(err)
	}
	notServing := waitHealth(healthpb.HealthCheckResponse_NOT_SERVING, 5*time.Second)
	time.Sleep(3 * time.Second) // an outage long enough to see calls fail
	// Liveness does not depend on the database: a probe on it must not restart the replica.
	if r, err := health.Check(ctx, &healthpb.HealthCheckRequest{Service: server.LivenessService}); err != nil || r.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("%s during the outage: %v %v", server.LivenessService, r.GetStatus(), err)
	}
	// AdminService fails closed the same way, reads and writes.
	adminClient := resolverv1.NewAdminServiceClient(conn)
	_, listErr := adminClient.ListProviders(auth, &resolverv1.ListProvidersRequest{})
	_, createErr := adminClient.CreateProvider(auth, &resolverv1.CreateProviderRequest{Type: "openai", Name: "during-the-outage"})
	for _, err := range []error{listErr, createErr} {
		if status.Code(err) != codes.Unavailable || reasonOf(err) != "DATABASE_UNAVAILABLE" {
			t.Fatalf("an admin call during the outage failed with %v, want Unavailable/DATABASE_UNAVAILABLE", err)
		}
	}
	if out := probe(); out != "" && !strings.Contains(out, "NOT_SERVING") {
		t.Fatalf("grpc-health-probe during the outage: %s", out)
	}
	up := time.Now()
	cluster, err = pgcluster.Start(ctx, pgcluster.Options{DataDir: dir, Port: port})
	if err != nil {
		t.Fatal(err)
	}
	serving := waitHealth(healthpb.HealthCheckResponse_SERVING, 15*time.Second)
	if out := probe(); out != "" && !strings.Contains(out, "status: SERVING") {
		t.Fatalf("grpc-health-probe after the outage: %s", out)
	}
	// Resolutions come back, and so does freshness: a change made now is seen within a second.
	var recovered time.Duration
	for start := time.Now(); ; {
		if _, err := client.ResolveModel(auth, req); err == nil {
			recovered = time.Since(up)
			break
		}
		if time.Since(start) > 15*time.Second {
			t.Fatal("resolutions did not recover within 15s of the database's return")
		}
		time.Sleep(50 * time.Millisecond)
	}
	stopLoad()
	if _, err := pool.Exec(ctx, `UPDATE chat_model_configs SET enabled = false WHERE id = $1`, cfg.ID); err != nil {
		t.Fatal(err)
	}
	for start := time.Now(); ; {
		_, err := client.ResolveModel(auth, req)
		if status.Code(err) == codes.FailedPrecondition {
			break
		}
		if time.Since(start) > time.Second {
			t.Fatalf("a change after the recovery was not seen within 1s: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}

	// What the callers saw.
	var before, failedFast, servedStale, slow int
	for _, c := range calls {
		switch {
		case c.end.Before(down):
			if c.err == nil {
				before++
			}
		case c.start.After(down.Add(time.Second)) && c.end.Before(up):
			if c.err == nil {
				servedStale++ // answered while the database was down: not provably fresh
				continue
			}
			if status.Code(c.err) != codes.Unavailable || reasonOf(c.err) != "DATABASE_UNAVAILABLE" {
				t.Errorf("during the outage a call failed with %v, want Unavailable/DATABASE_UNAVAILABLE", c.err)
			}
			failedFast++
		}
		if c.err != nil && c.end.Sub(c.start) > 3*time.Second {
			slow++
		}
	}
	t.Logf("%d answers before the outage; %d calls failed during it; NOT_SERVING after %s; SERVING %s and resolving %s after the database came back",
		before, failedFast, notServing.Round(time.Millisecond), serving.Round(time.Millisecond), recovered.Round(time.Millisecond))
	if before == 0 || failedFast == 0 {
		t.Fatalf("the load did not span the outage: %d before, %d during", before, failedFast)
	}
	if servedStale > 0 {
		t.Fatalf("%d calls were answered while the database was down", servedStale)
	}
	if slow > 0 {
		t.Fatalf("%d failed calls took more than 3s", slow)
	}
}

func reasonOf(err error) string {
	for _, d := range status.Convert(err).Details() {
		if info, ok := d.(*errdetails.ErrorInfo); ok {
			return info.GetReason()
		}
	}
	return ""
}
