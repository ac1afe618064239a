package admin_test

import (
	"context"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"

	"github.com/resolverd/resolverd/internal/rbac"
	"github.com/resolverd/resolverd/internal/testenv"
	resolverv1 "github.com/resolverd/resolverd/proto/resolver/v1"
)

// TestAuthzRedirectingAProviderNeedsItsKeys: base_url decides where workers send a provider's keys,
// so changing it needs, beyond ai_provider:write, the scopes that read those keys; every other
// change of the provider needs ai_provider:write alone.
func TestAuthzRedirectingAProviderNeedsItsKeys(t *testing.T) {
	e := testenv.New(t, testenv.Options{})
	p, err := e.Admin.CreateProvider(e.AsAdmin(), &resolverv1.CreateProviderRequest{Type: "openai", Name: "az-redirect", BaseUrl: "https://api.openai.com/v1"})
	if err != nil {
		t.Fatal(err)
	}
	writer := e.As(e.Token(t, "az-provider-writer", rbac.AIProviderWrite))
	update := func(ctx context.Context, r *resolverv1.UpdateProviderRequest) error {
		r.Id = p.Id
		_, err := e.Admin.UpdateProvider(ctx, r)
		return err
	}
	if err := update(writer, &resolverv1.UpdateProviderRequest{DisplayName: proto.String("Redirect"), BaseUrl: proto.String("https://api.openai.com/v1")}); err != nil {
		t.Fatalf("a change that keeps base_url, with ai_provider:write: %v", err)
	}
	info, _ := adRefused(t, e, codes.PermissionDenied, "MISSING_SCOPE", func(context.Context) error {
		return update(writer, &resolverv1.UpdateProviderRequest{BaseUrl: proto.String("https://collector.example.net/v1")})
	})
	if info.GetMetadata()["scope"] != string(rbac.AIProviderKeyRead) {
		t.Errorf("refused for %q, want ai_provider_key:read", info.GetMetadata()["scope"])
	}
	keyReader := e.As(e.Token(t, "az-provider-key-reader", rbac.AIProviderWrite, rbac.AIProviderKeyRead, rbac.UserAIProviderKeyRead))
	if err := update(keyReader, &resolverv1.UpdateProviderRequest{BaseUrl: proto.String("https://eu.api.openai.com/v1")}); err != nil {
		t.Fatalf("with the key scopes: %v", err)
	}
}

// TestAuthzCreatingAProviderWithABaseURLNeedsItsKeys: a new provider can be given keys and made the
// default, and a bedrock one answers with the workers' ambient cloud credentials, so creating one
// with a base_url needs the same key-read scopes as redirecting one (docs/CONTRACT.md §3.3); without
// a base_url (the SDK's default) ai_provider:write is enough.
func TestAuthzCreatingAProviderWithABaseURLNeedsItsKeys(t *testing.T) {
	e := testenv.New(t, testenv.Options{})
	create := func(ctx context.Context, name, baseURL string) error {
		_, err := e.Admin.CreateProvider(ctx, &resolverv1.CreateProviderRequest{Type: "bedrock", Name: name, BaseUrl: baseURL})
		return err
	}
	writer := e.As(e.Token(t, "az-create-writer", rbac.AIProviderWrite))
	if err := create(writer, "az-create-default", ""); err != nil {
		t.Fatalf("without base_url, with ai_provider:write: %v", err)
	}
	for _, tc := range []struct {
		name    string
		scopes  []rbac.Scope
		missing rbac.Scope
	}{
		{"writer", []rbac.Scope{rbac.AIProviderWrite}, rbac.AIProviderKeyRead},
		{"central key reader", []rbac.Scope{rbac.AIProviderWrite, rbac.AIProviderKeyRead}, rbac.UserAIProviderKeyRead},
		{"user key reader", []rbac.Scope{rbac.AIProviderWrite, rbac.UserAIProviderKeyRead}, rbac.AIProviderKeyRead},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := e.As(e.Token(t, "az-create-"+strings.ReplaceAll(tc.name, " ", "-"), tc.scopes...))
			before := e.TablesSnapshot(t)
			err := create(ctx, "az-create-redirected", "https://collector.example.net/v1")
			info := testenv.WantReason(t, err, codes.PermissionDenied, "MISSING_SCOPE")
			if info.GetMetadata()["scope"] != string(tc.missing) {
				t.Errorf("refused for %q, want %s", info.GetMetadata()["scope"], tc.missing)
			}
			if after := e.TablesSnapshot(t); after != before {
				t.Errorf("a refused create changed the database:\n%s", adDiff(before, after))
			}
		})
	}
	keyReader := e.As(e.Token(t, "az-create-key-reader", rbac.AIProviderWrite, rbac.AIProviderKeyRead, rbac.UserAIProviderKeyRead))
	if err := create(keyReader, "az-create-redirected", "https://collector.example.net/v1"); err != nil {
		t.Fatalf("with the key scopes: %v", err)
	}
}
