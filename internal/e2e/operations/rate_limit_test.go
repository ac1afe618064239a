package operations_test

import (
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/resolverd/resolverd/internal/metrics"
	"github.com/resolverd/resolverd/internal/rbac"
	"github.com/resolverd/resolverd/internal/server"
	"github.com/resolverd/resolverd/internal/testenv"
	"github.com/resolverd/resolverd/internal/transport"
	resolverv1 "github.com/resolverd/resolverd/proto/resolver/v1"
)

func TestRateLimitPerToken(t *testing.T) {
	m := metrics.New()
	e := testenv.New(t, testenv.Options{Configure: func(c *server.Config) {
		c.Metrics = m
		// A slow refill: 40 calls exceed the burst however slowly a loaded machine makes them.
		c.RateLimit = transport.RateLimit{PerSecond: 4, Burst: 20}
	}})
	chat, _ := seedChat(t, e, "sk-rate")
	other := e.Token(t, "other-worker", rbac.WorkerScopes...)
	req := &resolverv1.ResolveModelRequest{ChatId: chat, Purpose: resolverv1.Purpose_PURPOSE_CHAT}
	var ok, limited int
	start := time.Now()
	for range 40 {
		_, err := e.Resolver.ResolveModel(e.AsWorker(), req)
		switch status.Code(err) {
		case codes.OK:
			ok++
		case codes.ResourceExhausted:
			limited++
			st := status.Convert(err)
			var reason string
			var retry time.Duration
			for _, d := range st.Details() {
				switch d := d.(type) {
				case *errdetails.ErrorInfo:
					reason = d.GetReason()
				case *errdetails.RetryInfo:
					retry = d.GetRetryDelay().AsDuration()
				}
			}
			if reason != "RATE_LIMITED" || retry <= 0 {
				t.Fatalf("rate-limited call: reason %q, retry %s", reason, retry)
			}
		default:
			t.Fatalf("unexpected %v", err)
		}
	}
	// The burst, plus what the rate refilled while the calls ran.
	most := 20 + int(time.Since(start).Seconds()*4) + 1
	if ok < 20 || ok > most || limited == 0 {
		t.Fatalf("%d answered and %d limited out of 40 calls at 4/s with a burst of 20 (at most %d may pass)", ok, limited, most)
	}
	// Another token has its own budget.
	if _, err := e.Resolver.ResolveModel(e.As(other), req); err != nil {
		t.Fatalf("another token was limited: %v", err)
	}
	// The budget refills.
	time.Sleep(300 * time.Millisecond)
	if _, err := e.Resolver.ResolveModel(e.AsWorker(), req); err != nil {
		t.Fatalf("after the refill: %v", err)
	}
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	if !strings.Contains(rec.Body.String(), "resolverd_rate_limited_total ") || strings.Contains(rec.Body.String(), "resolverd_rate_limited_total 0") {
		t.Fatal("rate-limited calls are not counted")
	}
}
