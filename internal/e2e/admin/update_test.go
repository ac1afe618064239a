package admin_test

import (
	"testing"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/resolverd/resolverd/internal/testenv"
	resolverv1 "github.com/resolverd/resolverd/proto/resolver/v1"
)

// adWithoutTimes is a copy of a provider without timestamps, to compare what an update kept.
func adWithoutTimes(p *resolverv1.Provider) *resolverv1.Provider {
	c := proto.Clone(p).(*resolverv1.Provider)
	c.CreatedAt, c.UpdatedAt = nil, nil
	return c
}

// TestAdminE2EUpdateProvider: UpdateProvider changes exactly the fields that are set; the type
// never changes.
func TestAdminE2EUpdateProvider(t *testing.T) {
	t.Parallel()
	w := testenv.NewWorld(t, testenv.Options{})
	e, a := w.Env, w.Admin
	ctx := e.AsAdmin()
	p, err := a.CreateProvider(ctx, &resolverv1.CreateProviderRequest{
		Type: "azure", Name: "up-azure", DisplayName: "Azure EU", BaseUrl: "https://eu.example.com/openai", ByokPolicy: resolverv1.ByokPolicy_BYOK_POLICY_OPTIONAL,
	})
	if err != nil {
		t.Fatal(err)
	}
	bystander := w.Provider("up-bystander", "openai", resolverv1.ByokPolicy_BYOK_POLICY_REQUIRED)
	want := adWithoutTimes(p)

	steps := []struct {
		name  string
		req   *resolverv1.UpdateProviderRequest
		apply func(*resolverv1.Provider)
	}{
		{"nothing-set", &resolverv1.UpdateProviderRequest{}, func(*resolverv1.Provider) {}},
		{"display_name", &resolverv1.UpdateProviderRequest{DisplayName: proto.String("Azure Europe")}, func(p *resolverv1.Provider) { p.DisplayName = "Azure Europe" }},
		{"enabled-false", &resolverv1.UpdateProviderRequest{Enabled: proto.Bool(false)}, func(p *resolverv1.Provider) { p.Enabled = false }},
		{"byok_policy", &resolverv1.UpdateProviderRequest{ByokPolicy: resolverv1.ByokPolicy_BYOK_POLICY_REQUIRED}, func(p *resolverv1.Provider) {
			p.ByokPolicy = resolverv1.ByokPolicy_BYOK_POLICY_REQUIRED
		}},
		{"byok_policy-unspecified-keeps", &resolverv1.UpdateProviderRequest{ByokPolicy: resolverv1.ByokPolicy_BYOK_POLICY_UNSPECIFIED}, func(*resolverv1.Provider) {}},
		{"byok_policy-disabled", &resolverv1.UpdateProviderRequest{ByokPolicy: resolverv1.ByokPolicy_BYOK_POLICY_DISABLED}, func(p *resolverv1.Provider) {
			p.ByokPolicy = resolverv1.ByokPolicy_BYOK_POLICY_DISABLED
		}},
		{"central_key_policy", &resolverv1.UpdateProviderRequest{CentralKeyPolicy: resolverv1.CentralKeyPolicy_CENTRAL_KEY_POLICY_ROUND_ROBIN}, func(p *resolverv1.Provider) {
			p.CentralKeyPolicy = resolverv1.CentralKeyPolicy_CENTRAL_KEY_POLICY_ROUND_ROBIN
		}},
		{"central_key_policy-unspecified-keeps", &resolverv1.UpdateProviderRequest{}, func(*resolverv1.Provider) {}},
		{"central_key_policy-oldest", &resolverv1.UpdateProviderRequest{CentralKeyPolicy: resolverv1.CentralKeyPolicy_CENTRAL_KEY_POLICY_OLDEST}, func(p *resolverv1.Provider) {
			p.CentralKeyPolicy = resolverv1.CentralKeyPolicy_CENTRAL_KEY_POLICY_OLDEST
		}},
		{"base_url", &resolverv1.UpdateProviderRequest{BaseUrl: proto.String("https://west.example.com/v1")}, func(p *resolverv1.Provider) { p.BaseUrl = "https://west.example.com/v1" }},
		{"name", &resolverv1.UpdateProviderRequest{Name: proto.String("up-azure-west")}, func(p *resolverv1.Provider) { p.Name = "up-azure-west" }},
		{"enabled-true", &resolverv1.UpdateProviderRequest{Enabled: proto.Bool(true)}, func(p *resolverv1.Provider) { p.Enabled = true }},
		{"clear-display_name-and-base_url", &resolverv1.UpdateProviderRequest{DisplayName: proto.String(""), BaseUrl: proto.String("")}, func(p *resolverv1.Provider) {
			p.DisplayName, p.BaseUrl = "", ""
		}},
		{"several", &resolverv1.UpdateProviderRequest{Name: proto.String("up-azure"), DisplayName: proto.String("Azure"), Enabled: proto.Bool(false), ByokPolicy: resolverv1.ByokPolicy_BYOK_POLICY_OPTIONAL},
			func(p *resolverv1.Provider) {
				p.Name, p.DisplayName, p.Enabled, p.ByokPolicy = "up-azure", "Azure", false, resolverv1.ByokPolicy_BYOK_POLICY_OPTIONAL
			}},
	}
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			bystanderBefore := adListProvider(t, e, bystander.Id)
			req := proto.Clone(s.req).(*resolverv1.UpdateProviderRequest)
			req.Id = p.Id
			got, err := a.UpdateProvider(ctx, req)
			if err != nil {
				t.Fatal(err)
			}
			s.apply(want)
			if !proto.Equal(adWithoutTimes(got), want) {
				t.Fatalf("UpdateProvider(%v) = %v, want %v", req, adWithoutTimes(got), want)
			}
			if got.GetType() != "azure" {
				t.Errorf("type changed to %q", got.GetType())
			}
			if !got.GetCreatedAt().AsTime().Equal(p.GetCreatedAt().AsTime()) {
				t.Errorf("created_at changed: %v → %v", p.GetCreatedAt(), got.GetCreatedAt())
			}
			if listed := adListProvider(t, e, p.Id); !proto.Equal(listed, got) {
				t.Errorf("ListProviders has %v, UpdateProvider returned %v", listed, got)
			}
			var typ string
			if err := e.Pool.QueryRow(t.Context(), `SELECT type FROM ai_providers WHERE id = $1`, p.Id).Scan(&typ); err != nil {
				t.Fatal(err)
			}
			if typ != "azure" {
				t.Errorf("stored type = %q, want azure", typ)
			}
			if after := adListProvider(t, e, bystander.Id); !proto.Equal(after, bystanderBefore) {
				t.Errorf("another provider changed: %v → %v", bystanderBefore, after)
			}
		})
	}
}

// TestAdminE2EUpdateModelConfig: UpdateModelConfig changes exactly the fields that are set.
func TestAdminE2EUpdateModelConfig(t *testing.T) {
	t.Parallel()
	w := testenv.NewWorld(t, testenv.Options{})
	e, a := w.Env, w.Admin
	ctx := e.AsAdmin()
	p1 := w.Provider("umc-one", "openai", resolverv1.ByokPolicy_BYOK_POLICY_DISABLED)
	p2 := w.Provider("umc-two", "anthropic", resolverv1.ByokPolicy_BYOK_POLICY_DISABLED)
	opts, _ := structpb.NewStruct(map[string]any{"a": 1.0})
	c, err := a.CreateModelConfig(ctx, &resolverv1.CreateModelConfigRequest{AiProviderId: p1.Id, Model: "m1", DisplayName: "M1", ContextLimit: 1000, CompressionThreshold: 50, Options: opts})
	if err != nil {
		t.Fatal(err)
	}
	want := proto.Clone(c).(*resolverv1.ModelConfig)
	newOpts, _ := structpb.NewStruct(map[string]any{"b": "x"})
	steps := []struct {
		name  string
		req   *resolverv1.UpdateModelConfigRequest
		apply func(*resolverv1.ModelConfig)
	}{
		{"nothing-set", &resolverv1.UpdateModelConfigRequest{}, func(*resolverv1.ModelConfig) {}},
		{"model", &resolverv1.UpdateModelConfigRequest{Model: proto.String("m1-2024")}, func(c *resolverv1.ModelConfig) { c.Model = "m1-2024" }},
		{"display_name", &resolverv1.UpdateModelConfigRequest{DisplayName: proto.String("")}, func(c *resolverv1.ModelConfig) { c.DisplayName = "" }},
		{"enabled", &resolverv1.UpdateModelConfigRequest{Enabled: proto.Bool(false)}, func(c *resolverv1.ModelConfig) { c.Enabled = false }},
		{"context_limit", &resolverv1.UpdateModelConfigRequest{ContextLimit: proto.Int32(2000)}, func(c *resolverv1.ModelConfig) { c.ContextLimit = 2000 }},
		{"compression_threshold", &resolverv1.UpdateModelConfigRequest{CompressionThreshold: proto.Int32(0)}, func(c *resolverv1.ModelConfig) { c.CompressionThreshold = 0 }},
		{"options", &resolverv1.UpdateModelConfigRequest{Options: newOpts}, func(c *resolverv1.ModelConfig) { c.Options = newOpts }},
		{"ai_provider_id", &resolverv1.UpdateModelConfigRequest{AiProviderId: proto.String(p2.Id)}, func(c *resolverv1.ModelConfig) { c.AiProviderId = p2.Id }},
		{"is_default", &resolverv1.UpdateModelConfigRequest{IsDefault: proto.Bool(true)}, func(c *resolverv1.ModelConfig) { c.IsDefault = true }},
		{"is_default-false", &resolverv1.UpdateModelConfigRequest{IsDefault: proto.Bool(false), Enabled: proto.Bool(true)}, func(c *resolverv1.ModelConfig) {
			c.IsDefault, c.Enabled = false, true
		}},
	}
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			req := proto.Clone(s.req).(*resolverv1.UpdateModelConfigRequest)
			req.Id = c.Id
			got, err := a.UpdateModelConfig(ctx, req)
			if err != nil {
				t.Fatal(err)
			}
			s.apply(want)
			g, wc := proto.Clone(got).(*resolverv1.ModelConfig), proto.Clone(want).(*resolverv1.ModelConfig)
			g.CreatedAt, g.UpdatedAt, wc.CreatedAt, wc.UpdatedAt = nil, nil, nil, nil
			if !proto.Equal(g, wc) {
				t.Fatalf("UpdateModelConfig(%v) = %v, want %v", req, g, wc)
			}
			if listed := adListConfig(t, e, c.Id); !proto.Equal(listed, got) {
				t.Errorf("ListModelConfigs has %v, UpdateModelConfig returned %v", listed, got)
			}
		})
	}
}
