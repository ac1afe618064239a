package operations_test

import (
	"context"
	"io"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/resolverd/resolverd/internal/metrics"
	"github.com/resolverd/resolverd/internal/pgtest"
	"github.com/resolverd/resolverd/internal/rbac"
	"github.com/resolverd/resolverd/internal/server"
	"github.com/resolverd/resolverd/internal/testenv"
	resolverv1 "github.com/resolverd/resolverd/proto/resolver/v1"
)

// auditEvents lists every event matching req (all pages), waiting until at least want exist:
// resolutions reach the trail through the batching writer.
func auditEvents(t *testing.T, w *testenv.World, req *resolverv1.ListAuditEventsRequest, want int) []*resolverv1.AuditEvent {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		var all []*resolverv1.AuditEvent
		page := auditReq(req)
		for {
			resp, err := w.Admin.ListAuditEvents(w.AsAdmin(), page)
			if err != nil {
				t.Fatalf("ListAuditEvents: %v", err)
			}
			all = append(all, resp.GetEvents()...)
			if resp.GetNextPageToken() == "" {
				break
			}
			page = auditReq(req)
			page.PageToken = resp.GetNextPageToken()
		}
		if len(all) >= want || time.Now().After(deadline) {
			return all
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func auditReq(r *resolverv1.ListAuditEventsRequest) *resolverv1.ListAuditEventsRequest {
	return &resolverv1.ListAuditEventsRequest{Limit: r.GetLimit(), ChatId: r.GetChatId(), TokenId: r.GetTokenId(), Action: r.GetAction()}
}

func TestAuditTrailRecordsResolutionsAndChanges(t *testing.T) {
	w := testenv.NewWorld(t, testenv.Options{})
	p := w.Provider("audited", "openai", resolverv1.ByokPolicy_BYOK_POLICY_OPTIONAL)
	key := w.CentralKey(p.Id, "sk-audit-central-secret")
	cfg := w.Config(p.Id, "gpt-audit", true)
	off := w.Config(p.Id, "gpt-off", false)
	w.DisableConfig(off.Id)
	alice := w.User("audit-alice")
	chat := w.Chat(alice.Id, cfg.Id)

	ok, err := w.Resolve(chat.Id, "", resolverv1.Purpose_PURPOSE_CHAT)
	if err != nil {
		t.Fatal(err)
	}
	fell, err := w.Resolve(chat.Id, off.Id, resolverv1.Purpose_PURPOSE_SUBAGENT)
	if err != nil {
		t.Fatal(err)
	}
	_, err = w.Resolve(chat.Id, off.Id, resolverv1.Purpose_PURPOSE_TITLE)
	testenv.WantReason(t, err, codes.FailedPrecondition, "MODEL_CONFIG_DISABLED")

	events := auditEvents(t, w, &resolverv1.ListAuditEventsRequest{ChatId: chat.Id, Action: "ResolveModel", Limit: 2}, 3)
	if len(events) != 3 {
		t.Fatalf("%d resolution events for the chat, want 3", len(events))
	}
	// Newest first: the refused title, the fallback, the plain resolution.
	title, sub, first := events[0], events[1], events[2]
	if title.GetOutcome() != "MODEL_CONFIG_DISABLED" || title.GetDetails()["purpose"] != "title" || title.GetDetails()["key_id"] != "" {
		t.Errorf("refused title event: %v", title)
	}
	if sub.GetOutcome() != "OK" || sub.GetDetails()["fallback"] != "true" || sub.GetDetails()["fallback_reason"] != "MODEL_CONFIG_DISABLED" ||
		sub.GetDetails()["requested_model_config_id"] != off.Id || sub.GetDetails()["model_config_id"] != fell.GetModelConfig().GetId() {
		t.Errorf("fallback event: %v", sub)
	}
	if first.GetOutcome() != "OK" || first.GetDetails()["key_id"] != key.Id || first.GetDetails()["fingerprint"] != ok.GetCredential().GetFingerprint() ||
		first.GetDetails()["fingerprint"] != key.Fingerprint || first.GetDetails()["credential_source"] != "central" ||
		first.GetDetails()["provider_id"] != p.Id || first.GetChatId() != chat.Id || first.GetTokenId() == "" {
		t.Errorf("resolution event: %v", first)
	}
	for i := 1; i < len(events); i++ {
		prev, _ := strconv.ParseInt(events[i-1].GetId(), 10, 64)
		cur, _ := strconv.ParseInt(events[i].GetId(), 10, 64)
		if prev <= cur || events[i-1].GetCreatedAt().AsTime().Before(events[i].GetCreatedAt().AsTime()) {
			t.Errorf("events are not newest first: %s before %s", events[i-1].GetId(), events[i].GetId())
		}
	}

	// Admin changes are recorded with the caller's token and, for secrets, the fingerprint only.
	adds := auditEvents(t, w, &resolverv1.ListAuditEventsRequest{Action: "AddProviderKey"}, 1)
	if len(adds) != 1 || adds[0].GetDetails()["key_id"] != key.Id || adds[0].GetDetails()["fingerprint"] != key.Fingerprint || adds[0].GetTokenId() == "" {
		t.Fatalf("AddProviderKey events: %v", adds)
	}
	byToken := auditEvents(t, w, &resolverv1.ListAuditEventsRequest{TokenId: adds[0].GetTokenId()}, 1)
	for _, e := range byToken {
		if e.GetTokenId() != adds[0].GetTokenId() || e.GetAction() == "ResolveModel" {
			t.Errorf("token filter returned %v", e)
		}
	}
	if len(byToken) < 7 { // provider, key, 2 configs, update, user, chat
		t.Errorf("%d admin changes by the admin token, want at least 7", len(byToken))
	}

	// Never a secret, in the API or in the table.
	all := auditEvents(t, w, &resolverv1.ListAuditEventsRequest{Limit: 500}, 1)
	for _, e := range all {
		if b, _ := protojson.Marshal(e); strings.Contains(string(b), "sk-audit-central-secret") {
			t.Fatalf("audit event holds the secret: %s", b)
		}
	}
	var leaks int
	if err := w.Pool.QueryRow(context.Background(), `SELECT count(*) FROM audit_events WHERE details::text LIKE '%sk-audit-%'`).Scan(&leaks); err != nil || leaks != 0 {
		t.Fatalf("%d audit rows hold the secret (%v)", leaks, err)
	}

	// Bad filters and page tokens are refused.
	for _, req := range []*resolverv1.ListAuditEventsRequest{{PageToken: "nope"}, {Limit: 501}, {ChatId: "x"}} {
		_, err := w.Admin.ListAuditEvents(w.AsAdmin(), req)
		testenv.WantReason(t, err, codes.InvalidArgument, "INVALID_ARGUMENT")
	}
	// audit:read is required.
	_, err = w.Admin.ListAuditEvents(w.As(w.Token(t, "no-audit", rbac.ChatRead)), &resolverv1.ListAuditEventsRequest{})
	testenv.WantReason(t, err, codes.PermissionDenied, "MISSING_SCOPE")
}

// TestAuditRetentionRemovesOldEvents: docs/CONTRACT.md §7.4 — retention drops whole days: a day
// whose every moment is older than --audit-retention goes (records that waited in the default
// partition get their day's partition first), the day the cutoff falls in stays whole.
func TestAuditRetentionRemovesOldEvents(t *testing.T) {
	// Which days are expired changes at UTC midnight: not across it.
	if left := time.Until(time.Now().UTC().Truncate(24 * time.Hour).Add(24 * time.Hour)); left < 30*time.Second {
		time.Sleep(left + time.Second)
	}
	url := pgtest.NewDatabase(t)
	pool := pgtest.Connect(t, url)
	ctx := context.Background()
	// Written as psql would, before the server starts: days without a partition, so the default
	// partition takes them. Times from Go, in UTC: PostgreSQL's interval '1 day' is a day of the
	// session's time zone.
	now := time.Now().UTC()
	yesterday := now.Truncate(24 * time.Hour).Add(-24 * time.Hour)
	if _, err := pool.Exec(ctx, `INSERT INTO audit_events (occurred_at, action, outcome) VALUES
		($1, 'ResolveModel', 'OK'), ($2, 'ResolveModel', 'OK'), ($3, 'ResolveModel', 'OK')`,
		now.Add(-72*time.Hour), yesterday, now.Add(-10*time.Minute)); err != nil {
		t.Fatal(err)
	}
	w := &testenv.World{T: t, Env: testenv.New(t, testenv.Options{DatabaseURL: url, AuditRetention: 24 * time.Hour})}
	deadline := time.Now().Add(10 * time.Second)
	for {
		var old, kept int
		_ = pool.QueryRow(ctx, `SELECT count(*) FILTER (WHERE occurred_at < $1),
			count(*) FILTER (WHERE occurred_at >= $1) FROM audit_events WHERE action = 'ResolveModel'`, now.Add(-48*time.Hour)).Scan(&old, &kept)
		if old == 0 {
			// The start of yesterday is older than the retention, but its day is not over yet.
			if kept != 2 {
				t.Fatalf("retention removed events of a day not wholly expired (%d left, want 2)", kept)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d events of an expired day are still there", old)
		}
		time.Sleep(50 * time.Millisecond)
	}
	var inDefault int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM audit_events_default`).Scan(&inDefault); err != nil || inDefault != 0 {
		var left, parts string
		_ = pool.QueryRow(ctx, `SELECT string_agg(occurred_at::text, ', ') FROM audit_events_default`).Scan(&left)
		_ = pool.QueryRow(ctx, `SELECT string_agg(inhrelid::regclass::text, ', ') FROM pg_inherits WHERE inhparent = 'audit_events'::regclass`).Scan(&parts)
		t.Logf("in the default partition: %s; partitions: %s", left, parts)
		t.Fatalf("%d events left in the default partition (%v); the server logged:\n%s", inDefault, err, w.Logs.String())
	}
	// The server that did it still serves.
	if _, err := w.Admin.ListAuditEvents(w.AsAdmin(), &resolverv1.ListAuditEventsRequest{}); err != nil {
		t.Fatal(err)
	}
}

// TestAuditTrailRecordsRefusedResolutions: a token without a scope every resolution needs is
// refused before the handler runs, and the trail still shows what it tried; a call without a
// valid token leaves nothing (anyone could send those).
func TestAuditTrailRecordsRefusedResolutions(t *testing.T) {
	w := testenv.NewWorld(t, testenv.Options{})
	p := w.Provider("refused", "openai", resolverv1.ByokPolicy_BYOK_POLICY_DISABLED)
	w.CentralKey(p.Id, "sk-refused-central")
	cfg := w.Config(p.Id, "gpt-refused", true)
	chat := w.Chat(w.User("refused-owner").Id, cfg.Id)

	noProviders := w.Token(t, "no-providers", rbac.ChatRead, rbac.ModelConfigRead, rbac.AIProviderKeyRead)
	_, err := w.Resolver.ResolveModel(w.As(noProviders), &resolverv1.ResolveModelRequest{ChatId: chat.Id, ModelConfigId: cfg.Id, Purpose: resolverv1.Purpose_PURPOSE_TITLE})
	info := testenv.WantReason(t, err, codes.PermissionDenied, "MISSING_SCOPE")
	if info.GetMetadata()["scope"] != string(rbac.AIProviderRead) {
		t.Fatalf("refused for %q, want ai_provider:read", info.GetMetadata()["scope"])
	}
	_, err = w.Resolver.ResolveModel(w.As("rsv_"+strings.Repeat("A", 43)), &resolverv1.ResolveModelRequest{ChatId: chat.Id, Purpose: resolverv1.Purpose_PURPOSE_CHAT})
	testenv.WantReason(t, err, codes.Unauthenticated, "UNAUTHENTICATED")
	// A resolution that works, so that the trail has reached everything before it is read.
	if _, err := w.Resolve(chat.Id, "", resolverv1.Purpose_PURPOSE_CHAT); err != nil {
		t.Fatal(err)
	}

	events := auditEvents(t, w, &resolverv1.ListAuditEventsRequest{ChatId: chat.Id, Action: "ResolveModel"}, 2)
	if len(events) != 2 {
		t.Fatalf("%d resolution events for the chat, want 2 (the refusal and the resolution): %v", len(events), events)
	}
	refused := events[1]
	if refused.GetOutcome() != "MISSING_SCOPE" || refused.GetTokenId() == "" || refused.GetTokenId() == events[0].GetTokenId() ||
		refused.GetDetails()["purpose"] != "title" || refused.GetDetails()["requested_model_config_id"] != cfg.Id ||
		refused.GetDetails()["key_id"] != "" || refused.GetDetails()["model_config_id"] != "" {
		t.Errorf("refusal event: %v", refused)
	}
	if events[0].GetOutcome() != "OK" {
		t.Errorf("resolution event: %v", events[0])
	}
}

// TestUnauthenticatedCallsAreCountedNotRecorded: docs/CONTRACT.md §7.4 — a call without a valid
// token leaves nothing in the trail (anyone could send those), and is counted by method; a
// refused call with a valid token is recorded.
func TestUnauthenticatedCallsAreCountedNotRecorded(t *testing.T) {
	m := metrics.New()
	w := testenv.NewWorld(t, testenv.Options{Configure: func(c *server.Config) { c.Metrics = m }})
	bogus := w.As("rsv_" + strings.Repeat("B", 43))
	for range 3 {
		_, err := w.Admin.CreateProvider(bogus, &resolverv1.CreateProviderRequest{Type: "openai", Name: "unauthenticated"})
		testenv.WantReason(t, err, codes.Unauthenticated, "UNAUTHENTICATED")
	}
	_, err := w.Admin.ListProviders(context.Background(), &resolverv1.ListProvidersRequest{})
	testenv.WantReason(t, err, codes.Unauthenticated, "UNAUTHENTICATED")
	// A refusal with a valid token, so that the trail has reached everything before it is read.
	_, err = w.Admin.CreateProvider(w.AsWorker(), &resolverv1.CreateProviderRequest{Type: "openai", Name: "by-worker"})
	testenv.WantReason(t, err, codes.PermissionDenied, "MISSING_SCOPE")
	events := auditEvents(t, w, &resolverv1.ListAuditEventsRequest{Action: "CreateProvider"}, 1)
	if len(events) != 1 || events[0].GetOutcome() != "MISSING_SCOPE" || events[0].GetTokenId() == "" {
		t.Fatalf("CreateProvider events: %v, want the worker's refusal alone", events)
	}
	if list := auditEvents(t, w, &resolverv1.ListAuditEventsRequest{Action: "ListProviders"}, 0); len(list) != 0 {
		t.Fatalf("ListProviders events: %v", list)
	}

	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	body, _ := io.ReadAll(rec.Body)
	for _, want := range []string{
		`resolverd_unauthenticated_calls_total{method="/resolver.v1.AdminService/CreateProvider"} 3`,
		`resolverd_unauthenticated_calls_total{method="/resolver.v1.AdminService/ListProviders"} 1`,
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}
