package admin_test

import (
	"context"
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
