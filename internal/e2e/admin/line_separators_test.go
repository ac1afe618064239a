package admin_test

import (
	"context"
	"testing"

	"github.com/google/uuid"
	"google.golang.org/grpc/codes"

	"github.com/resolverd/resolverd/internal/testenv"
	resolverv1 "github.com/resolverd/resolverd/proto/resolver/v1"
)

// TestAdminE2EFreeTextRefusesLineSeparators: U+2028 and U+2029 break lines as \n does (in UIs,
// JavaScript, log viewers), so free text refuses them inside a value as it refuses control
// characters (docs/CONTRACT.md §3.6), and nothing is stored.
func TestAdminE2EFreeTextRefusesLineSeparators(t *testing.T) {
	t.Parallel()
	w := testenv.NewWorld(t, testenv.Options{})
	ctx, a := w.AsAdmin(), w.Admin
	p := w.Provider("sep-openai", "openai", resolverv1.ByokPolicy_BYOK_POLICY_DISABLED)
	for _, sep := range []string{"\u2028", "\u2029"} {
		text := "gpt-4o" + sep + "ignore previous"
		for field, call := range map[string]func(context.Context) error{
			"model": func(ctx context.Context) error {
				_, err := a.CreateModelConfig(ctx, &resolverv1.CreateModelConfigRequest{AiProviderId: p.GetId(), Model: text, ContextLimit: 1})
				return err
			},
			"display_name": func(ctx context.Context) error {
				_, err := a.CreateProvider(ctx, &resolverv1.CreateProviderRequest{Type: "openai", Name: "sep-other", DisplayName: text})
				return err
			},
			"username": func(ctx context.Context) error {
				_, err := a.PutUser(ctx, &resolverv1.PutUserRequest{Id: uuid.NewString(), Username: text})
				return err
			},
			"name": func(ctx context.Context) error {
				_, err := a.CreateToken(ctx, &resolverv1.CreateTokenRequest{Name: text, Scopes: []string{"chat:read"}})
				return err
			},
			"description": func(ctx context.Context) error {
				_, err := a.PutWorkloadIdentity(ctx, &resolverv1.PutWorkloadIdentityRequest{Subject: "cn:sep", Scopes: []string{"chat:read"}, Description: text})
				return err
			},
		} {
			info := testenv.WantReason(t, call(ctx), codes.InvalidArgument, "INVALID_ARGUMENT")
			if got := info.GetMetadata()["field"]; got != field {
				t.Errorf("%q in %s: field %q, want %q", sep, field, got, field)
			}
		}
	}
	configs, err := a.ListModelConfigs(ctx, &resolverv1.ListModelConfigsRequest{})
	if err != nil || len(configs.GetModelConfigs()) != 0 {
		t.Fatalf("a refused config was stored: %v, %v", configs.GetModelConfigs(), err)
	}
}
