package operations_test

import (
	"context"
	"testing"
	"time"

	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/resolverd/resolverd/internal/testenv"
)

// waitHealth polls Health/Check (no token: health is public) until it reports want.
func waitHealth(t *testing.T, e *testenv.Env, service string, want healthpb.HealthCheckResponse_ServingStatus) {
	t.Helper()
	client := healthpb.NewHealthClient(e.Conn)
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := client.Check(context.Background(), &healthpb.HealthCheckRequest{Service: service})
		if err == nil && resp.GetStatus() == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("health of %q: got %v, %v; want %v", service, resp.GetStatus(), err, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestHealthFollowsTheSchema: SERVING only while the schema is current; a schema that falls behind
// (a migration reverted under the server) turns it NOT_SERVING, and it recovers by itself.
func TestHealthFollowsTheSchema(t *testing.T) {
	e := testenv.New(t, testenv.Options{})
	for _, svc := range []string{"", "resolver.v1.ResolverService", "resolver.v1.AdminService"} {
		waitHealth(t, e, svc, healthpb.HealthCheckResponse_SERVING)
	}
	ctx := context.Background()
	var latest int64
	if err := e.Pool.QueryRow(ctx, `SELECT max(version_id) FROM goose_db_version`).Scan(&latest); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Pool.Exec(ctx, `UPDATE goose_db_version SET version_id = -version_id WHERE version_id = $1`, latest); err != nil {
		t.Fatal(err)
	}
	waitHealth(t, e, "", healthpb.HealthCheckResponse_NOT_SERVING)
	waitHealth(t, e, "resolver.v1.ResolverService", healthpb.HealthCheckResponse_NOT_SERVING)
	if _, err := e.Pool.Exec(ctx, `UPDATE goose_db_version SET version_id = -version_id WHERE version_id = $1`, -latest); err != nil {
		t.Fatal(err)
	}
	waitHealth(t, e, "", healthpb.HealthCheckResponse_SERVING)
}
