package operations_test

import (
	"io"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/resolverd/resolverd/internal/metrics"
	"github.com/resolverd/resolverd/internal/rbac"
	"github.com/resolverd/resolverd/internal/server"
	"github.com/resolverd/resolverd/internal/service"
	"github.com/resolverd/resolverd/internal/testenv"
	resolverv1 "github.com/resolverd/resolverd/proto/resolver/v1"
)

// seedChat makes a provider with a central key, a default config, a user and a chat through
// AdminService, and returns the chat id and the disabled config's id.
func seedChat(t *testing.T, e *testenv.Env, key string) (chat, disabled string) {
	t.Helper()
	ctx := e.AsAdmin()
	p, err := e.Admin.CreateProvider(ctx, &resolverv1.CreateProviderRequest{Type: "openai", Name: "p-" + uuid.NewString()[:8]})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.Admin.AddProviderKey(ctx, &resolverv1.AddProviderKeyRequest{ProviderId: p.Id, ApiKey: key}); err != nil {
		t.Fatal(err)
	}
	c, err := e.Admin.CreateModelConfig(ctx, &resolverv1.CreateModelConfigRequest{AiProviderId: p.Id, Model: "m", IsDefault: true, ContextLimit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	off, err := e.Admin.CreateModelConfig(ctx, &resolverv1.CreateModelConfigRequest{AiProviderId: p.Id, Model: "off", Enabled: proto.Bool(false), ContextLimit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	u, err := e.Admin.PutUser(ctx, &resolverv1.PutUserRequest{Id: uuid.NewString(), Username: "u-" + uuid.NewString()[:8]})
	if err != nil {
		t.Fatal(err)
	}
	ch, err := e.Admin.PutChat(ctx, &resolverv1.PutChatRequest{Id: uuid.NewString(), OwnerId: u.Id, ModelConfigId: c.Id})
	if err != nil {
		t.Fatal(err)
	}
	return ch.Id, off.Id
}

func TestMetricsExposeTheServer(t *testing.T) {
	m := metrics.New()
	e := testenv.New(t, testenv.Options{Configure: func(c *server.Config) { c.Metrics = m }})
	const key = "sk-metrics-secret-0042"
	chat, off := seedChat(t, e, key)
	for range 3 {
		if _, err := e.Resolver.ResolveModel(e.AsWorker(), &resolverv1.ResolveModelRequest{ChatId: chat, Purpose: resolverv1.Purpose_PURPOSE_CHAT}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := e.Resolver.ResolveModel(e.AsWorker(), &resolverv1.ResolveModelRequest{ChatId: chat, ModelConfigId: off, Purpose: resolverv1.Purpose_PURPOSE_SUBAGENT}); err != nil {
		t.Fatal(err)
	}
	_, _ = e.Resolver.ResolveModel(e.AsWorker(), &resolverv1.ResolveModelRequest{ChatId: chat, ModelConfigId: off, Purpose: resolverv1.Purpose_PURPOSE_TITLE})

	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	body, _ := io.ReadAll(rec.Body)
	text := string(body)
	for _, want := range []string{
		`resolverd_resolutions_total{credential_source="central",outcome="OK",purpose="chat"} 3`,
		`resolverd_resolutions_total{credential_source="central",outcome="OK",purpose="subagent"} 1`,
		`resolverd_resolutions_total{credential_source="",outcome="MODEL_CONFIG_DISABLED",purpose="title"} 1`,
		`resolverd_fallbacks_total{reason="MODEL_CONFIG_DISABLED"} 1`,
		`grpc_server_handled_total{grpc_code="OK",grpc_method="ResolveModel",grpc_service="resolver.v1.ResolverService",grpc_type="unary"} 4`,
		`grpc_server_handling_seconds_bucket`,
		`resolverd_cache_hits_total`, `resolverd_cache_misses_total`, `resolverd_cache_invalidations_total`,
		`resolverd_listener_reconnects_total 0`, `resolverd_cache_live 1`,
		`resolverd_audit_queue_depth`, `resolverd_audit_records_rejected_total`, `resolverd_db_pool_connections`, `resolverd_db_pool_acquires_total`,
		`resolverd_panics_total 0`, `go_goroutines`, `process_resident_memory_bytes`,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	if strings.Contains(text, key) || strings.Contains(text, chat) {
		t.Fatal("/metrics shows a secret or an id")
	}
}

func TestRateLimitPerToken(t *testing.T) {
	m := metrics.New()
	e := testenv.New(t, testenv.Options{Configure: func(c *server.Config) {
		c.Metrics = m
		c.RateLimit = service.RateLimit{PerSecond: 20, Burst: 20}
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
	most := 20 + int(time.Since(start).Seconds()*20) + 1
	if ok < 20 || ok > most || limited == 0 {
		t.Fatalf("%d answered and %d limited out of 40 calls at 20/s with a burst of 20 (at most %d may pass)", ok, limited, most)
	}
	// Another token has its own budget.
	if _, err := e.Resolver.ResolveModel(e.As(other), req); err != nil {
		t.Fatalf("another token was limited: %v", err)
	}
	// The budget refills.
	time.Sleep(200 * time.Millisecond)
	if _, err := e.Resolver.ResolveModel(e.AsWorker(), req); err != nil {
		t.Fatalf("after the refill: %v", err)
	}
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	if !strings.Contains(rec.Body.String(), "resolverd_rate_limited_total ") || strings.Contains(rec.Body.String(), "resolverd_rate_limited_total 0") {
		t.Fatal("rate-limited calls are not counted")
	}
}
