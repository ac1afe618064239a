package transport

import (
	"context"
	"strconv"
	"strings"
	"testing"

	"google.golang.org/grpc/metadata"
)

type otherKey struct{}

// TestRequestIDs: a call is named by the caller's sane x-request-id or by a new process-unique id;
// the naming context answers every other value and the cancellation from its parent.
func TestRequestIDs(t *testing.T) {
	parent, cancel := context.WithCancel(context.WithValue(context.Background(), otherKey{}, "kept"))
	ctx, echoed := withRequestID(parent)
	id := RequestID(ctx)
	prefix, seq, ok := strings.Cut(id, "-")
	if echoed || !ok || prefix != requestIDPrefix || len(prefix) != 12 {
		t.Fatalf("new id %q (echoed %v), want %s-<base 36>", id, echoed, requestIDPrefix)
	}
	if _, err := strconv.ParseUint(seq, 36, 64); err != nil {
		t.Fatalf("new id %q: %v", id, err)
	}
	if next, _ := withRequestID(parent); RequestID(next) == id {
		t.Fatalf("two calls named %q", id)
	}
	if ctx.Value(otherKey{}) != "kept" {
		t.Fatal("the naming context hides its parent's values")
	}
	cancel()
	<-ctx.Done()
	if ctx.Err() != context.Canceled {
		t.Fatalf("Err = %v after the parent was cancelled", ctx.Err())
	}
	if RequestID(context.Background()) != "" {
		t.Fatal("a context outside a call has a request id")
	}

	in := metadata.NewIncomingContext(context.Background(), metadata.Pairs(RequestIDHeader, "trace-42"))
	if ctx, echoed := withRequestID(in); !echoed || RequestID(ctx) != "trace-42" {
		t.Fatalf("the caller's id became %q (echoed %v)", RequestID(ctx), echoed)
	}
	insane := metadata.NewIncomingContext(context.Background(), metadata.Pairs(RequestIDHeader, "two words"))
	if ctx, echoed := withRequestID(insane); echoed || !strings.HasPrefix(RequestID(ctx), requestIDPrefix+"-") {
		t.Fatalf("an insane id was kept: %q (echoed %v)", RequestID(ctx), echoed)
	}

	// Naming a call and reading its name back cost the id and the context.
	if n := testing.AllocsPerRun(100, func() { _ = RequestID(must(withRequestID(parent))) }); n > 2 {
		t.Errorf("naming a call takes %v allocations, want at most 2", n)
	}
}

func must(ctx context.Context, _ bool) context.Context { return ctx }

// BenchmarkRequestID: naming a call, and the audit record reading the name back.
func BenchmarkRequestID(b *testing.B) {
	parent := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		ctx, _ := withRequestID(parent)
		if RequestID(ctx) == "" {
			b.Fatal("no id")
		}
	}
}

// TestPublicServicesAreGRPCs: public's shortcut (a method outside "/grpc." is not public) holds
// for every public service, and public agrees with PublicServices.
func TestPublicServicesAreGRPCs(t *testing.T) {
	for svc := range PublicServices {
		if !strings.HasPrefix(svc, "grpc.") {
			t.Errorf("public service %s is not one of gRPC's own: public() would miss it", svc)
		}
		if !public("/" + svc + "/Check") {
			t.Errorf("public(/%s/Check) = false", svc)
		}
	}
	for _, m := range []string{"/resolver.v1.ResolverService/ResolveModel", "/resolver.v1.AdminService/ListProviders",
		"/grpc.health.v1.Other/Check", "/grpc.", ""} {
		if public(m) {
			t.Errorf("public(%q) = true", m)
		}
	}
}
