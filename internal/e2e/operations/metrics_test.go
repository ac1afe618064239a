package operations_test

import (
	"io"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/resolverd/resolverd/internal/metrics"
	"github.com/resolverd/resolverd/internal/server"
	"github.com/resolverd/resolverd/internal/testenv"
	resolverv1 "github.com/resolverd/resolverd/proto/resolver/v1"
)

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
