package admin_test

import (
	"context"
	"errors"
	"io"
	"slices"
	"testing"
	"time"

	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	reflectionpb "google.golang.org/grpc/reflection/grpc_reflection_v1"

	"github.com/resolverd/resolverd/internal/testenv"
)

// TestAuthzPublicWithoutToken checks docs/CONTRACT.md §3's only exceptions: health and reflection answer
// without a token.
func TestAuthzPublicWithoutToken(t *testing.T) {
	e := testenv.New(t, testenv.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	resp, err := healthpb.NewHealthClient(e.Conn).Check(ctx, &healthpb.HealthCheckRequest{})
	if err != nil {
		t.Fatalf("health check without a token: %v", err)
	}
	if resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Errorf("health = %v, want SERVING", resp.GetStatus())
	}

	stream, err := reflectionpb.NewServerReflectionClient(e.Conn).ServerReflectionInfo(ctx)
	if err != nil {
		t.Fatalf("reflection without a token: %v", err)
	}
	if err := stream.Send(&reflectionpb.ServerReflectionRequest{
		MessageRequest: &reflectionpb.ServerReflectionRequest_ListServices{},
	}); err != nil {
		t.Fatalf("reflection send: %v", err)
	}
	got, err := stream.Recv()
	if err != nil {
		t.Fatalf("reflection without a token: %v", err)
	}
	if err := stream.CloseSend(); err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, s := range got.GetListServicesResponse().GetService() {
		names = append(names, s.GetName())
	}
	for _, want := range []string{"resolver.v1.ResolverService", "resolver.v1.AdminService"} {
		if !slices.Contains(names, want) {
			t.Errorf("reflection lists %v, want %s among them", names, want)
		}
	}
	if _, err := stream.Recv(); !errors.Is(err, io.EOF) {
		t.Errorf("reflection stream end: %v", err)
	}
}
