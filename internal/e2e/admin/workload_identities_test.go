package admin_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"

	"github.com/resolverd/resolverd/internal/rbac"
	"github.com/resolverd/resolverd/internal/testenv"
	resolverv1 "github.com/resolverd/resolverd/proto/resolver/v1"
)

// TestWorkloadIdentityAdministration: bindings are put (created, then replaced), listed by subject
// a page at a time, and deleted; every change is in the audit trail; bad requests are refused
// field by field, and deleting a subject that is not bound is NOT_FOUND naming it.
func TestWorkloadIdentityAdministration(t *testing.T) {
	e := testenv.New(t, testenv.Options{})
	ctx := e.AsAdmin()
	put := func(subject string, scopes ...string) *resolverv1.WorkloadIdentity {
		t.Helper()
		w, err := e.Admin.PutWorkloadIdentity(ctx, &resolverv1.PutWorkloadIdentityRequest{Subject: subject, Scopes: scopes, Description: "bound by the test"})
		if err != nil {
			t.Fatalf("put %s: %v", subject, err)
		}
		return w
	}
	const worker = "system:serviceaccount:chat:worker"
	w := put(worker, "model_config:read", "chat:read", "chat:read")
	if w.GetSubject() != worker || !slices.Equal(w.GetScopes(), []string{"chat:read", "model_config:read"}) ||
		w.GetDescription() != "bound by the test" || w.GetCreatedAt() == nil || w.GetUpdatedAt() == nil {
		t.Fatalf("put answered %v", w)
	}
	if w2 := put(worker, "*"); !slices.Equal(w2.GetScopes(), []string{"*"}) || !w2.GetCreatedAt().AsTime().Equal(w.GetCreatedAt().AsTime()) {
		t.Fatalf("a second put answered %v, want the same binding with scopes [*]", w2)
	}
	put("spiffe://example.org/ns/chat/sa/worker", "chat:read")
	put("cn:legacy worker", "chat:read")

	var subjects []string
	req := &resolverv1.ListWorkloadIdentitiesRequest{PageSize: 2}
	for pages := 0; ; pages++ {
		resp, err := e.Admin.ListWorkloadIdentities(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		for _, w := range resp.GetWorkloadIdentities() {
			subjects = append(subjects, w.GetSubject())
		}
		if resp.GetNextPageToken() == "" {
			if pages != 1 {
				t.Errorf("%d pages of 2 for 3 bindings", pages+1)
			}
			break
		}
		req.PageToken = resp.GetNextPageToken()
	}
	if want := []string{"cn:legacy worker", "spiffe://example.org/ns/chat/sa/worker", worker}; !slices.Equal(subjects, want) {
		t.Fatalf("listed %q, want %q", subjects, want)
	}
	// Another list's page token is refused.
	tokens, err := e.Admin.ListTokens(ctx, &resolverv1.ListTokensRequest{PageSize: 1})
	if err != nil || tokens.GetNextPageToken() == "" {
		t.Fatalf("ListTokens: %v", err)
	}
	adInvalid(t, e, []string{"page_token"}, func(ctx context.Context) error {
		_, err := e.Admin.ListWorkloadIdentities(ctx, &resolverv1.ListWorkloadIdentitiesRequest{PageToken: tokens.GetNextPageToken()})
		return err
	})

	if _, err := e.Admin.DeleteWorkloadIdentity(ctx, &resolverv1.DeleteWorkloadIdentityRequest{Subject: worker}); err != nil {
		t.Fatal(err)
	}
	info, _ := adRefused(t, e, codes.NotFound, "NOT_FOUND", func(ctx context.Context) error {
		_, err := e.Admin.DeleteWorkloadIdentity(ctx, &resolverv1.DeleteWorkloadIdentityRequest{Subject: worker})
		return err
	})
	if info.GetMetadata()["subject"] != worker {
		t.Errorf("NOT_FOUND metadata %v, want subject %s", info.GetMetadata(), worker)
	}

	// The delete is recorded with its change; the refused one after it through the audit writer,
	// which writes in batches: wait for it, and count each outcome on its own.
	byOutcome := func(action string) map[string][]*resolverv1.AuditEvent {
		t.Helper()
		events, err := e.Admin.ListAuditEvents(ctx, &resolverv1.ListAuditEventsRequest{Action: action, PageSize: 100})
		if err != nil {
			t.Fatalf("audit of %s: %v", action, err)
		}
		out := map[string][]*resolverv1.AuditEvent{}
		for _, ev := range events.GetEvents() {
			out[ev.GetOutcome()] = append(out[ev.GetOutcome()], ev)
		}
		return out
	}
	testenv.Within(t, 2*time.Second, "the awaited state", func() error {
		if n := len(byOutcome("DeleteWorkloadIdentity")["NOT_FOUND"]); n != 1 {
			return fmt.Errorf("%d refused deletes recorded, want 1", n)
		}
		return nil
	})
	deletes := byOutcome("DeleteWorkloadIdentity")
	if len(deletes["OK"]) != 1 {
		t.Fatalf("audit of the delete: %v", deletes)
	}
	if ev := deletes["OK"][0]; ev.GetDetails()["subject"] != worker || ev.GetDetails()["scopes"] != "*" || ev.GetTokenId() == "" || ev.GetSubject() != "" {
		t.Errorf("audit event %v: want the subject, its scopes and the admin token", ev)
	}
	if puts := byOutcome("PutWorkloadIdentity"); len(puts["OK"]) != 4 {
		t.Fatalf("audit of the puts: %d events", len(puts["OK"]))
	}

	for _, tc := range []struct {
		name   string
		req    *resolverv1.PutWorkloadIdentityRequest
		fields []string
	}{
		{"nothing", &resolverv1.PutWorkloadIdentityRequest{}, []string{"subject", "scopes"}},
		{"unknown scope", &resolverv1.PutWorkloadIdentityRequest{Subject: "cn:x", Scopes: []string{"chat:admin"}}, []string{"scopes"}},
		{"system scope", &resolverv1.PutWorkloadIdentityRequest{Subject: "cn:x", Scopes: []string{"system:token:authenticate"}}, []string{"scopes"}},
		{"padded subject", &resolverv1.PutWorkloadIdentityRequest{Subject: " cn:x", Scopes: []string{"chat:read"}}, []string{"subject"}},
		{"control character", &resolverv1.PutWorkloadIdentityRequest{Subject: "cn:x\ny", Scopes: []string{"chat:read"}}, []string{"subject"}},
		{"long subject", &resolverv1.PutWorkloadIdentityRequest{Subject: strings.Repeat("s", 1025), Scopes: []string{"chat:read"}}, []string{"subject"}},
		{"long description", &resolverv1.PutWorkloadIdentityRequest{Subject: "cn:x", Scopes: []string{"chat:read"}, Description: strings.Repeat("d", 201)}, []string{"description"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			adInvalid(t, e, tc.fields, func(ctx context.Context) error {
				_, err := e.Admin.PutWorkloadIdentity(ctx, tc.req)
				return err
			})
		})
	}
	adInvalid(t, e, []string{"subject"}, func(ctx context.Context) error {
		_, err := e.Admin.DeleteWorkloadIdentity(ctx, &resolverv1.DeleteWorkloadIdentityRequest{})
		return err
	})
	if w := put(strings.Repeat("s", 1024), "chat:read"); len(w.GetSubject()) != 1024 {
		t.Errorf("a 1024-byte subject came back as %d bytes", len(w.GetSubject()))
	}
}

// TestWorkloadIdentityGrants: token:write binds only scopes its holder has, and replaces or deletes
// only bindings whose every scope it holds (docs/CONTRACT.md §3.4, as for tokens); a refused call
// changes nothing.
func TestWorkloadIdentityGrants(t *testing.T) {
	e := testenv.New(t, testenv.Options{})
	narrow := e.Token(t, "identity-admin", rbac.TokenWrite, rbac.ChatRead)
	if _, err := e.Admin.PutWorkloadIdentity(e.AsAdmin(), &resolverv1.PutWorkloadIdentityRequest{Subject: "cn:wide", Scopes: []string{"*"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Admin.PutWorkloadIdentity(e.As(narrow), &resolverv1.PutWorkloadIdentityRequest{Subject: "cn:mine", Scopes: []string{"chat:read"}}); err != nil {
		t.Fatalf("binding a scope it holds: %v", err)
	}
	refused := []struct {
		name  string
		call  func(context.Context) error
		scope string
	}{
		{"grant another scope", func(ctx context.Context) error {
			_, err := e.Admin.PutWorkloadIdentity(ctx, &resolverv1.PutWorkloadIdentityRequest{Subject: "cn:mine", Scopes: []string{"chat:read", "ai_provider_key:read"}})
			return err
		}, "ai_provider_key:read"},
		{"narrow a wider binding", func(ctx context.Context) error {
			_, err := e.Admin.PutWorkloadIdentity(ctx, &resolverv1.PutWorkloadIdentityRequest{Subject: "cn:wide", Scopes: []string{"chat:read"}})
			return err
		}, "*"},
		{"delete a wider binding", func(ctx context.Context) error {
			_, err := e.Admin.DeleteWorkloadIdentity(ctx, &resolverv1.DeleteWorkloadIdentityRequest{Subject: "cn:wide"})
			return err
		}, "*"},
		{"without token:write", func(context.Context) error {
			_, err := e.Admin.ListWorkloadIdentities(e.AsWorker(), &resolverv1.ListWorkloadIdentitiesRequest{})
			return err
		}, "token:write"},
	}
	for _, tc := range refused {
		t.Run(tc.name, func(t *testing.T) {
			before := e.TablesSnapshot(t)
			err := tc.call(e.As(narrow))
			info := testenv.WantReason(t, err, codes.PermissionDenied, "MISSING_SCOPE")
			if got := info.GetMetadata()["scope"]; got != tc.scope {
				t.Errorf("metadata[scope] = %q, want %q", got, tc.scope)
			}
			if after := e.TablesSnapshot(t); after != before {
				t.Errorf("a refused call changed the database:\n%s", adDiff(before, after))
			}
		})
	}
	if _, err := e.Admin.DeleteWorkloadIdentity(e.As(narrow), &resolverv1.DeleteWorkloadIdentityRequest{Subject: "cn:mine"}); err != nil {
		t.Fatalf("deleting a binding of its own scopes: %v", err)
	}
}
