package operations_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/resolverd/resolverd/internal/server"
	"github.com/resolverd/resolverd/internal/telemetry"
	"github.com/resolverd/resolverd/internal/testenv"
	resolverv1 "github.com/resolverd/resolverd/proto/resolver/v1"
)

// TestTracing: every RPC but health checks gets a span; no span holds a secret.
func TestTracing(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	defer tp.Shutdown(context.Background()) //nolint:errcheck
	e := testenv.New(t, testenv.Options{Configure: func(c *server.Config) { c.StatsHandler = telemetry.ServerHandler(tp) }})
	const key = "sk-traced-secret-7788"
	chat, _ := seedChat(t, e, key)
	if _, err := e.Resolver.ResolveModel(e.AsWorker(), &resolverv1.ResolveModelRequest{ChatId: chat, Purpose: resolverv1.Purpose_PURPOSE_CHAT}); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if _, err := healthpb.NewHealthClient(e.Conn).Check(context.Background(), &healthpb.HealthCheckRequest{}); err != nil {
			t.Fatal(err)
		}
	}
	// A server span ends after the response is on its way: the client can see the answer first.
	for start := time.Now(); time.Since(start) < 5*time.Second; time.Sleep(10 * time.Millisecond) {
		done := false
		for _, s := range rec.Ended() {
			done = done || s.Name() == "resolver.v1.ResolverService/ResolveModel"
		}
		if done {
			break
		}
	}
	names := map[string]int{}
	for _, s := range rec.Ended() {
		names[s.Name()]++
		dump := fmt.Sprint(s.Name(), s.Attributes(), s.Events(), s.Status())
		if strings.Contains(dump, key) {
			t.Fatalf("span %s holds the secret: %s", s.Name(), dump)
		}
	}
	if names["resolver.v1.ResolverService/ResolveModel"] != 1 || names["resolver.v1.AdminService/AddProviderKey"] != 1 {
		t.Fatalf("spans: %v", names)
	}
	for n := range names {
		if strings.HasPrefix(n, "grpc.health") {
			t.Fatalf("a health check was traced: %v", names)
		}
	}
}
