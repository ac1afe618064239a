package admin_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/resolverd/resolverd/internal/rbac"
	"github.com/resolverd/resolverd/internal/testenv"
	resolverv1 "github.com/resolverd/resolverd/proto/resolver/v1"
)

// adAuditEvent waits for the newest audit event of action by token whose outcome is outcome:
// refused calls reach the trail through the batching writer, within its flush interval.
func adAuditEvent(t *testing.T, e *testenv.Env, action, tokenID, outcome string) *resolverv1.AuditEvent {
	t.Helper()
	for start := time.Now(); ; time.Sleep(20 * time.Millisecond) {
		resp, err := e.Admin.ListAuditEvents(e.AsAdmin(), &resolverv1.ListAuditEventsRequest{Action: action, TokenId: tokenID})
		if err != nil {
			t.Fatalf("ListAuditEvents: %v", err)
		}
		for _, ev := range resp.GetEvents() {
			if ev.GetOutcome() == outcome {
				return ev
			}
		}
		if time.Since(start) > 10*time.Second {
			t.Fatalf("no %s event of token %s with outcome %s after 10s; have %v", action, tokenID, outcome, resp.GetEvents())
		}
	}
}

// adTokenID is the id of the token named name.
func adTokenID(t *testing.T, e *testenv.Env, name string) string {
	t.Helper()
	var id uuid.UUID
	if err := e.Pool.QueryRow(context.Background(), `SELECT id FROM api_tokens WHERE name = $1`, name).Scan(&id); err != nil {
		t.Fatalf("token %s: %v", name, err)
	}
	return id.String()
}

// TestAuditRecordsRefusedAdminCalls: docs/CONTRACT.md §7.4 — every AdminService call of an
// authenticated caller is in the trail, refused ones too, with the caller's token, the method and
// the reason; what the caller asked is kept, its secrets never.
func TestAuditRecordsRefusedAdminCalls(t *testing.T) {
	e := testenv.New(t, testenv.Options{})
	w := adWorld(t, e)
	admin := adTokenID(t, e, "test-admin")
	worker := adTokenID(t, e, "test-worker")
	tokenWriter := e.Token(t, "au-token-writer", rbac.TokenWrite)
	writer := adTokenID(t, e, "au-token-writer")
	existing := w.Provider("au-existing", "openai", resolverv1.ByokPolicy_BYOK_POLICY_DISABLED)

	// A token:write token minting "*": refused by the store, after the authenticator let it in.
	_, err := e.Admin.CreateToken(e.As(tokenWriter), &resolverv1.CreateTokenRequest{Name: "au-star", Scopes: []string{"*"}})
	testenv.WantReason(t, err, codes.PermissionDenied, "MISSING_SCOPE")
	ev := adAuditEvent(t, e, "CreateToken", writer, "MISSING_SCOPE")
	if ev.GetDetails()["scope"] != "*" || ev.GetDetails()["request.scopes"] != "*" || ev.GetDetails()["request.name"] != "au-star" {
		t.Errorf("minting *: %v", ev)
	}

	// A worker token calling CreateProvider: refused by the authenticator.
	_, err = e.Admin.CreateProvider(e.AsWorker(), &resolverv1.CreateProviderRequest{Type: "openai", Name: "au-by-worker"})
	testenv.WantReason(t, err, codes.PermissionDenied, "MISSING_SCOPE")
	ev = adAuditEvent(t, e, "CreateProvider", worker, "MISSING_SCOPE")
	if ev.GetDetails()["scope"] != "ai_provider:write" || ev.GetDetails()["request.name"] != "au-by-worker" || ev.GetDetails()["request_id"] == "" {
		t.Errorf("worker calling CreateProvider: %v", ev)
	}

	// INVALID_ARGUMENT, with the fields it names.
	_, err = e.Admin.CreateProvider(e.AsAdmin(), &resolverv1.CreateProviderRequest{Type: "nope", Name: "Bad Name"})
	testenv.WantReason(t, err, codes.InvalidArgument, "INVALID_ARGUMENT")
	ev = adAuditEvent(t, e, "CreateProvider", admin, "INVALID_ARGUMENT")
	if ev.GetDetails()["invalid_fields"] != "type name" || ev.GetDetails()["request.name"] != "Bad Name" {
		t.Errorf("invalid CreateProvider: %v", ev)
	}

	// NOT_FOUND, with the id.
	missing := uuid.NewString()
	_, err = e.Admin.UpdateProvider(e.AsAdmin(), &resolverv1.UpdateProviderRequest{Id: missing, BaseUrl: proto.String("https://x.example/v1")})
	testenv.WantReason(t, err, codes.NotFound, "NOT_FOUND")
	ev = adAuditEvent(t, e, "UpdateProvider", admin, "NOT_FOUND")
	if ev.GetDetails()["id"] != missing || ev.GetDetails()["request.base_url"] != "https://x.example/v1" {
		t.Errorf("UpdateProvider of a missing provider: %v", ev)
	}

	// ALREADY_EXISTS.
	_, err = e.Admin.CreateProvider(e.AsAdmin(), &resolverv1.CreateProviderRequest{Type: "openai", Name: existing.GetName()})
	testenv.WantReason(t, err, codes.AlreadyExists, "ALREADY_EXISTS")
	ev = adAuditEvent(t, e, "CreateProvider", admin, "ALREADY_EXISTS")
	if ev.GetDetails()["field"] != "name" || ev.GetDetails()["request.name"] != existing.GetName() {
		t.Errorf("duplicate CreateProvider: %v", ev)
	}

	// FAILED_PRECONDITION, on a call that carries a secret: the secret is not recorded.
	const secret = "sk-au-refused-secret-0001"
	_, err = e.Admin.AddProviderKey(e.AsAdmin(), &resolverv1.AddProviderKeyRequest{ProviderId: missing, ApiKey: secret})
	testenv.WantReason(t, err, codes.FailedPrecondition, "PROVIDER_NOT_FOUND")
	ev = adAuditEvent(t, e, "AddProviderKey", admin, "PROVIDER_NOT_FOUND")
	if ev.GetDetails()["request.provider_id"] != missing || ev.GetDetails()["provider_id"] != missing {
		t.Errorf("AddProviderKey to a missing provider: %v", ev)
	}

	// Never the secret, in the API or in the table.
	resp, err := e.Admin.ListAuditEvents(e.AsAdmin(), &resolverv1.ListAuditEventsRequest{PageSize: 1000})
	if err != nil {
		t.Fatal(err)
	}
	for _, ev := range resp.GetEvents() {
		if b, _ := protojson.Marshal(ev); strings.Contains(string(b), secret) || strings.Contains(string(b), "api_key\"") {
			t.Fatalf("an audit event holds the secret: %s", b)
		}
	}
	if n := adCount(t, e, `SELECT count(*) FROM audit_events WHERE details::text LIKE '%sk-au-%'`); n != 0 {
		t.Fatalf("%d audit rows hold the secret", n)
	}
}

// TestAuditRecordsEachChangesBeforeAndAfter: every change records the fields it set, before and
// after; a create only after, a delete only before; a secret by its fingerprint only.
func TestAuditRecordsEachChangesBeforeAndAfter(t *testing.T) {
	e := testenv.New(t, testenv.Options{})
	w := adWorld(t, e)
	p := w.Provider("au-redirected", "openai-compat", resolverv1.ByokPolicy_BYOK_POLICY_OPTIONAL)
	if _, err := e.Admin.UpdateProvider(e.AsAdmin(), &resolverv1.UpdateProviderRequest{Id: p.GetId(),
		BaseUrl: proto.String("https://elsewhere.example/v1"), Enabled: proto.Bool(false)}); err != nil {
		t.Fatal(err)
	}
	const secret = "sk-au-changed-secret-0001"
	key := w.CentralKey(p.GetId(), secret)
	if _, err := e.Admin.DeleteProviderKey(e.AsAdmin(), &resolverv1.DeleteProviderKeyRequest{Id: key.GetId()}); err != nil {
		t.Fatal(err)
	}

	changes := func(action string) map[string]*resolverv1.AuditFieldChange {
		t.Helper()
		resp, err := e.Admin.ListAuditEvents(e.AsAdmin(), &resolverv1.ListAuditEventsRequest{Action: action})
		if err != nil || len(resp.GetEvents()) != 1 {
			t.Fatalf("%s events: %v, %v", action, resp.GetEvents(), err)
		}
		out := map[string]*resolverv1.AuditFieldChange{}
		for _, c := range resp.GetEvents()[0].GetChanges() {
			out[c.GetField()] = c
		}
		return out
	}
	upd := changes("UpdateProvider")
	if len(upd) != 2 || upd["base_url"].Before == nil || upd["base_url"].GetBefore() != "" || upd["base_url"].GetAfter() != "https://elsewhere.example/v1" ||
		upd["enabled"].GetBefore() != "true" || upd["enabled"].GetAfter() != "false" {
		t.Errorf("UpdateProvider changes: %v", upd)
	}
	created := changes("CreateProvider")
	if c := created["name"]; c == nil || (c.Before != nil) || c.GetAfter() != "au-redirected" || created["type"].GetAfter() != "openai-compat" ||
		created["byok_policy"].GetAfter() != "optional" || created["central_key_policy"].GetAfter() != "oldest" {
		t.Errorf("CreateProvider changes: %v", created)
	}
	added := changes("AddProviderKey")
	if c := added["api_key_fingerprint"]; c == nil || c.GetAfter() != key.GetFingerprint() || (c.Before != nil) {
		t.Errorf("AddProviderKey changes: %v", added)
	}
	gone := changes("DeleteProviderKey")
	if c := gone["api_key_fingerprint"]; c == nil || c.GetBefore() != key.GetFingerprint() || (c.After != nil) || gone["enabled"].GetBefore() != "true" {
		t.Errorf("DeleteProviderKey changes: %v", gone)
	}
	if n := adCount(t, e, `SELECT count(*) FROM audit_events WHERE details::text LIKE '%sk-au-%'`); n != 0 {
		t.Fatalf("%d audit rows hold the secret", n)
	}
}

// TestAuditRefusedBaseURLKeepsNoCredentials: a base_url refused for carrying credentials (user
// info, or a query such as Azure's ?api-key=) is recorded without them (docs/CONTRACT.md §7.4:
// what the caller tried, never a secret). Before the fix the refused call's record kept the URL
// verbatim, so a token holding audit:read alone read the provider key an admin had pasted into
// base_url by mistake.
func TestAuditRefusedBaseURLKeepsNoCredentials(t *testing.T) {
	e := testenv.New(t, testenv.Options{})
	admin := adTokenID(t, e, "test-admin")
	auditor := e.Token(t, "au-auditor", rbac.AuditRead)
	const (
		inUser  = "sk-au-url-userinfo-0001"
		inQuery = "sk-au-url-query-0002"
		inFrag  = "sk-au-url-fragment-0003"
		bare    = "sk-au-url-bare-0004"
	)
	for _, u := range []string{
		"https://svc:" + inUser + "@api.example/v1",
		"https://api.example/v1?api-key=" + inQuery,
		"https://api.example/v1#" + inFrag,
		"https://" + inUser + "@api.example:99999/v1", // refused for its port, not its user info
		bare, // a key pasted into the wrong field
	} {
		_, err := e.Admin.CreateProvider(e.AsAdmin(), &resolverv1.CreateProviderRequest{Type: "openai-compat", Name: "au-url", BaseUrl: u})
		testenv.WantReason(t, err, codes.InvalidArgument, "INVALID_ARGUMENT")
		adNoLeak(t, err, inUser, inQuery, inFrag, bare)
	}
	_, err := e.Admin.UpdateProvider(e.AsAdmin(), &resolverv1.UpdateProviderRequest{Id: uuid.NewString(), BaseUrl: proto.String("https://svc:" + inUser + "@api.example/v1")})
	testenv.WantReason(t, err, codes.InvalidArgument, "INVALID_ARGUMENT")
	testenv.Within(t, 10*time.Second, "the awaited state", func() error {
		if n := adCount(t, e, `SELECT count(*) FROM audit_events WHERE action IN ('CreateProvider', 'UpdateProvider') AND outcome = 'INVALID_ARGUMENT' AND token_id = $1`, admin); n != 6 {
			return fmt.Errorf("%d of the 6 refused calls recorded", n)
		}
		return nil
	})
	resp, err := e.Admin.ListAuditEvents(e.As(auditor), &resolverv1.ListAuditEventsRequest{PageSize: 1000})
	if err != nil {
		t.Fatal(err)
	}
	hosts := 0
	for _, ev := range resp.GetEvents() {
		b, _ := protojson.Marshal(ev)
		for _, s := range []string{inUser, inQuery, inFrag, bare} {
			if strings.Contains(string(b), s) {
				t.Errorf("an audit:read token reads the secret %s in %s", s, b)
			}
		}
		if strings.Contains(ev.GetDetails()["request.base_url"], "api.example") {
			hosts++
		}
	}
	if hosts != 5 {
		t.Errorf("%d records name the refused base_url's host, want 5: what was tried stays visible", hosts)
	}
	if n := adCount(t, e, `SELECT count(*) FROM audit_events WHERE details::text LIKE '%sk-au-url-%'`); n != 0 {
		t.Errorf("%d audit rows hold a secret", n)
	}
}
