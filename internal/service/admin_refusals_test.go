package service

import (
	"context"
	"strings"
	"testing"

	"github.com/google/uuid"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/resolverd/resolverd/internal/audit"
	"github.com/resolverd/resolverd/internal/db"
	"github.com/resolverd/resolverd/internal/dbauthz"
	"github.com/resolverd/resolverd/internal/errs"
	"github.com/resolverd/resolverd/internal/rbac"
	"github.com/resolverd/resolverd/internal/transport"
	resolverv1 "github.com/resolverd/resolverd/proto/resolver/v1"
)

// refusingRecorder refuses every record, as a full audit buffer does.
type refusingRecorder struct{}

func (refusingRecorder) Record(db.AuditEvent) error { return audit.ErrFull }

func caller() (context.Context, uuid.UUID) {
	id := uuid.New()
	return rbac.WithPrincipal(context.Background(), rbac.Principal{TokenID: id, Name: "t", Scopes: []rbac.Scope{rbac.UserAIProviderKeyWrite}}), id
}

// TestFailedAdminCallsAreRecordedWithoutSecrets: a failed call's record has the caller, the
// method, the reason, the error's metadata and the request's fields — never a secret.
func TestFailedAdminCallsAreRecordedWithoutSecrets(t *testing.T) {
	rec := &fakeRecorder{}
	a := NewAdmin(dbauthz.New(&fakeQuerier{}), fuzzFPKey, rec, fuzzLog)
	ctx, token := caller()
	req := &resolverv1.PutUserProviderKeyRequest{UserId: "not-an-id", AiProviderId: uuid.NewString(), ApiKey: "sk-never-recorded"}
	info := &grpc.UnaryServerInfo{FullMethod: resolverv1.AdminService_PutUserProviderKey_FullMethodName}
	failing := func(ctx context.Context, req any) (any, error) {
		return nil, transport.ToStatus(ctx, fuzzLog, errs.Invalid(errs.FieldViolation{Field: "user_id", Description: "bad"}))
	}
	_, err := a.RecordFailures(ctx, req, info, failing)
	if status.Code(err) != codes.InvalidArgument || len(rec.events) != 1 {
		t.Fatalf("err %v, %d records", err, len(rec.events))
	}
	e := rec.events[0]
	if e.Action != "PutUserProviderKey" || e.Outcome != "INVALID_ARGUMENT" || e.TokenID != token ||
		e.Details["invalid_fields"] != "user_id" || e.Details["request.user_id"] != "not-an-id" || e.Details["request.ai_provider_id"] != req.AiProviderId {
		t.Fatalf("record %+v", e)
	}
	for k, v := range e.Details {
		if strings.Contains(k+v, "sk-never") || strings.Contains(k, "api_key") {
			t.Fatalf("the secret is recorded: %q = %q", k, v)
		}
	}

	// A successful call, and a call to another service, are not this interceptor's to record.
	ok := func(context.Context, any) (any, error) { return "ok", nil }
	if _, err := a.RecordFailures(ctx, req, info, ok); err != nil || len(rec.events) != 1 {
		t.Fatalf("a successful call: %v, %d records", err, len(rec.events))
	}
	other := &grpc.UnaryServerInfo{FullMethod: resolverv1.ResolverService_ResolveModel_FullMethodName}
	if _, _ = a.RecordFailures(ctx, req, other, failing); len(rec.events) != 1 {
		t.Fatalf("a ResolveModel failure was recorded as an admin call")
	}

	// The authenticator's refusals: with a caller, recorded; without one, or over the rate limit, not.
	a.RecordRefusal(ctx, resolverv1.AdminService_CreateProvider_FullMethodName, &resolverv1.CreateProviderRequest{Name: "x\x00y"},
		errs.New(errs.MissingScope, "no", "scope", "ai_provider:write"))
	a.RecordRefusal(context.Background(), resolverv1.AdminService_CreateProvider_FullMethodName, nil, errs.New(errs.Unauthenticated, "no"))
	a.RecordRefusal(ctx, resolverv1.AdminService_CreateProvider_FullMethodName, nil, errs.New(errs.RateLimited, "slow down"))
	if len(rec.events) != 2 {
		t.Fatalf("%d records, want 2", len(rec.events))
	}
	if e := rec.events[1]; e.Outcome != "MISSING_SCOPE" || e.Details["scope"] != "ai_provider:write" || e.Details["request.name"] != "x\uFFFDy" {
		t.Fatalf("refusal record %+v", e)
	}
}

// TestAFailureThatCannotBeRecordedIsNotAnswered: when the audit writer refuses the record, the
// caller gets DATABASE_UNAVAILABLE, not the refusal.
func TestAFailureThatCannotBeRecordedIsNotAnswered(t *testing.T) {
	a := NewAdmin(dbauthz.New(&fakeQuerier{}), fuzzFPKey, refusingRecorder{}, fuzzLog)
	ctx, _ := caller()
	info := &grpc.UnaryServerInfo{FullMethod: resolverv1.AdminService_GetProvider_FullMethodName}
	_, err := a.RecordFailures(ctx, &resolverv1.GetProviderRequest{Id: uuid.NewString()}, info, func(ctx context.Context, _ any) (any, error) {
		return nil, transport.ToStatus(ctx, fuzzLog, errs.New(errs.NotFound, "no such provider"))
	})
	if reason, _, _ := outcomeOfStatus(status.Convert(err)); status.Code(err) != codes.Unavailable || reason != string(errs.DatabaseUnavailable) {
		t.Fatalf("err %v, want DATABASE_UNAVAILABLE", err)
	}
}

func TestClean(t *testing.T) {
	long := strings.Repeat("é", maxRecordedValue+10)
	if got := clean(long); !strings.HasSuffix(got, "…") || len([]rune(got)) != maxRecordedValue+1 {
		t.Fatalf("clean(long) has %d runes", len([]rune(got)))
	}
	if got := clean("a\x00b\xffc"); got != "a\uFFFDb\uFFFDc" {
		t.Fatalf("clean = %q", got)
	}
}

// TestWithoutCredentials: what a refused base_url's record keeps. Each secret-looking part
// ("sk…", "AKIA…", "p?ss") must be gone; the scheme, and the host when it can be told, stay.
func TestWithoutCredentials(t *testing.T) {
	for in, want := range map[string]string{
		"https://api.example/v1":                        "https://api.example/v1",
		"https://svc:sk-1@api.example/v1":               "https://(redacted)@api.example/v1",
		"https://sk-1@api.example:99999/v1":             "https://(redacted)@api.example:99999/v1",
		"https://user:AKIA/wJal+K7MDENG@api.example/v1": "https://(redacted)@api.example/v1",
		"https://user:a/b@c/d@api.example/v1":           "https://(redacted)@api.example/v1",
		"https://api.example/v1?api-key=sk-1":           "https://api.example/v1?(redacted)",
		"https://api.example/v1#sk-1":                   "https://api.example/v1?(redacted)",
		"https://user:p?ss@api.example/v1":              "https://(redacted)?(redacted)",
		"https://user:p#ss@api.example/v1":              "https://(redacted)?(redacted)",
		"https://svc:sk-1@api.example/v1?key=sk-2":      "https://(redacted)@api.example/v1?(redacted)",
		"HTTPS://svc:sk-1@api.example/v1":               "HTTPS://(redacted)@api.example/v1",
		"  https://svc:sk-1@api.example  ":              "https://(redacted)@api.example",
		"sk-proj-1234":                                  "(redacted: not an http(s) URL)",
		"https:/\\svc:sk-1@api.example":                 "(redacted: not an http(s) URL)",
		"ftp://svc:sk-1@api.example":                    "(redacted: not an http(s) URL)",
	} {
		if got := withoutCredentials(in); got != want {
			t.Errorf("withoutCredentials(%q) = %q, want %q", in, got, want)
		}
	}
}
