package operations_test

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"google.golang.org/grpc/health/grpc_health_v1"

	"github.com/resolverd/resolverd/internal/server"
	"github.com/resolverd/resolverd/internal/testenv"
	resolverv1 "github.com/resolverd/resolverd/proto/resolver/v1"
)

// BenchmarkResolveModelWarm is one warm resolution through the real server over loopback, against
// BenchmarkHealthCheck on the same server: the floor. make bench measures both under load; these
// are for profiling (go test -run '^$' -bench 'Warm|HealthCheck' -cpuprofile cpu.out ./internal/e2e/operations/).
// The server runs as `resolverd serve` does by default (logging at info, --call-timeout 3s), not
// as the tests' servers do (logging every call at debug).
func BenchmarkResolveModelWarm(b *testing.B) {
	e := testenv.New(b, asServed)
	p, err := e.Admin.CreateProvider(e.AsAdmin(), &resolverv1.CreateProviderRequest{Type: "openai", Name: "bench", ByokPolicy: resolverv1.ByokPolicy_BYOK_POLICY_OPTIONAL})
	if err != nil {
		b.Fatal(err)
	}
	if _, err := e.Admin.AddProviderKey(e.AsAdmin(), &resolverv1.AddProviderKeyRequest{ProviderId: p.Id, ApiKey: "sk-bench"}); err != nil {
		b.Fatal(err)
	}
	c, err := e.Admin.CreateModelConfig(e.AsAdmin(), &resolverv1.CreateModelConfigRequest{AiProviderId: p.Id, Model: "m", IsDefault: true, ContextLimit: 1000})
	if err != nil {
		b.Fatal(err)
	}
	u, err := e.Admin.PutUser(e.AsAdmin(), &resolverv1.PutUserRequest{Id: "30000000-0000-4000-8000-0000000000b1", Username: "b"})
	if err != nil {
		b.Fatal(err)
	}
	chat, err := e.Admin.PutChat(e.AsAdmin(), &resolverv1.PutChatRequest{Id: "40000000-0000-4000-8000-0000000000b1", OwnerId: u.Id, ModelConfigId: c.Id})
	if err != nil {
		b.Fatal(err)
	}
	ctx := e.AsWorker()
	req := &resolverv1.ResolveModelRequest{ChatId: chat.Id, Purpose: resolverv1.Purpose_PURPOSE_CHAT}
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := e.Resolver.ResolveModel(ctx, req); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

func BenchmarkHealthCheck(b *testing.B) {
	e := testenv.New(b, asServed)
	h := grpc_health_v1.NewHealthClient(e.Conn)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := h.Check(context.Background(), &grpc_health_v1.HealthCheckRequest{}); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// asServed configures a benchmark's server as `resolverd serve` runs by default.
var asServed = testenv.Options{Configure: func(c *server.Config) {
	c.Logger = slog.New(slog.NewJSONHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelInfo}))
	c.CallTimeout = 3 * time.Second
}}
