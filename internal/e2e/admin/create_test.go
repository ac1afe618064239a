package admin_test

import (
	"testing"

	"github.com/google/uuid"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/resolverd/resolverd/internal/testenv"
	resolverv1 "github.com/resolverd/resolverd/proto/resolver/v1"
)

// adListProvider returns the provider of ListProviders with id, or nil.
func adListProvider(t *testing.T, e *testenv.Env, id string) *resolverv1.Provider {
	t.Helper()
	list, err := e.Admin.ListProviders(e.AsAdmin(), &resolverv1.ListProvidersRequest{})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range list.GetProviders() {
		if p.GetId() == id {
			return p
		}
	}
	return nil
}

// adListConfig returns the config of ListModelConfigs with id, or nil.
func adListConfig(t *testing.T, e *testenv.Env, id string) *resolverv1.ModelConfig {
	t.Helper()
	list, err := e.Admin.ListModelConfigs(e.AsAdmin(), &resolverv1.ListModelConfigsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range list.GetModelConfigs() {
		if c.GetId() == id {
			return c
		}
	}
	return nil
}

// adListKeys returns ListProviderKeys(providerID) by key id.
func adListKeys(t *testing.T, e *testenv.Env, providerID string) map[string]*resolverv1.ProviderKey {
	t.Helper()
	list, err := e.Admin.ListProviderKeys(e.AsAdmin(), &resolverv1.ListProviderKeysRequest{ProviderId: providerID})
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]*resolverv1.ProviderKey{}
	for _, k := range list.GetKeys() {
		if _, dup := out[k.GetId()]; dup {
			t.Errorf("ListProviderKeys lists key %s twice", k.GetId())
		}
		out[k.GetId()] = k
	}
	return out
}

func adIsUUID(t *testing.T, what, s string) {
	t.Helper()
	if id, err := uuid.Parse(s); err != nil || id == uuid.Nil || len(s) != 36 {
		t.Errorf("%s = %q, want a UUID", what, s)
	}
}

// adWithoutTimes is a copy of a provider without timestamps, to compare what an update kept.
func adWithoutTimes(p *resolverv1.Provider) *resolverv1.Provider {
	c := proto.Clone(p).(*resolverv1.Provider)
	c.CreatedAt, c.UpdatedAt = nil, nil
	return c
}

// TestAdminE2ECreate: Create* and Put* return the resource with the request's fields, and an unset
// `enabled` (proto3 optional) means true.
func TestAdminE2ECreate(t *testing.T) {
	t.Parallel()
	w := testenv.NewWorld(t, testenv.Options{})
	e, a := w.Env, w.Admin
	ctx := e.AsAdmin()
	var p *resolverv1.Provider

	t.Run("CreateProvider", func(t *testing.T) {
		var err error
		p, err = a.CreateProvider(ctx, &resolverv1.CreateProviderRequest{
			Type: "azure", Name: "cr-azure", DisplayName: "Azure EU", BaseUrl: "https://eu.example.com/openai", ByokPolicy: resolverv1.ByokPolicy_BYOK_POLICY_REQUIRED,
		})
		if err != nil {
			t.Fatal(err)
		}
		adIsUUID(t, "id", p.GetId())
		want := &resolverv1.Provider{Id: p.GetId(), Type: "azure", Name: "cr-azure", DisplayName: "Azure EU", BaseUrl: "https://eu.example.com/openai",
			Enabled: true, ByokPolicy: resolverv1.ByokPolicy_BYOK_POLICY_REQUIRED}
		if got := adWithoutTimes(p); !proto.Equal(got, want) {
			t.Errorf("CreateProvider = %v, want %v", got, want)
		}
		if p.GetCreatedAt() == nil || p.GetUpdatedAt() == nil {
			t.Errorf("timestamps missing: %v", p)
		}
		if listed := adListProvider(t, e, p.Id); !proto.Equal(listed, p) {
			t.Errorf("ListProviders has %v, CreateProvider returned %v", listed, p)
		}

		off, err := a.CreateProvider(ctx, &resolverv1.CreateProviderRequest{Type: "bedrock", Name: "cr-bedrock", Enabled: proto.Bool(false)})
		if err != nil {
			t.Fatal(err)
		}
		if off.GetEnabled() || off.GetByokPolicy() != resolverv1.ByokPolicy_BYOK_POLICY_DISABLED || off.GetDisplayName() != "" || off.GetBaseUrl() != "" {
			t.Errorf("CreateProvider(enabled=false, policy unset) = %v, want disabled, BYOK_POLICY_DISABLED, empty display_name and base_url", off)
		}
		on, err := a.CreateProvider(ctx, &resolverv1.CreateProviderRequest{Type: "vercel", Name: "cr-vercel", Enabled: proto.Bool(true), ByokPolicy: resolverv1.ByokPolicy_BYOK_POLICY_OPTIONAL})
		if err != nil {
			t.Fatal(err)
		}
		if !on.GetEnabled() || on.GetByokPolicy() != resolverv1.ByokPolicy_BYOK_POLICY_OPTIONAL {
			t.Errorf("CreateProvider(enabled=true, optional) = %v", on)
		}
		var stored struct {
			Enabled bool
			Policy  string
		}
		if err := e.Pool.QueryRow(t.Context(), `SELECT enabled, byok_policy FROM ai_providers WHERE id = $1`, off.Id).Scan(&stored.Enabled, &stored.Policy); err != nil {
			t.Fatal(err)
		}
		if stored.Enabled || stored.Policy != "disabled" {
			t.Errorf("stored enabled/byok_policy = %v/%q, want false/disabled", stored.Enabled, stored.Policy)
		}
	})

	t.Run("AddProviderKey", func(t *testing.T) {
		def, err := a.AddProviderKey(ctx, &resolverv1.AddProviderKeyRequest{ProviderId: p.Id, ApiKey: "sk-cr-1"})
		if err != nil {
			t.Fatal(err)
		}
		adIsUUID(t, "id", def.GetId())
		if def.GetProviderId() != p.Id || !def.GetEnabled() || len(def.GetFingerprint()) != 16 {
			t.Errorf("AddProviderKey(enabled unset) = %v, want provider %s, enabled, a fingerprint", def, p.Id)
		}
		off, err := a.AddProviderKey(ctx, &resolverv1.AddProviderKeyRequest{ProviderId: p.Id, ApiKey: "sk-cr-2", Enabled: proto.Bool(false)})
		if err != nil {
			t.Fatal(err)
		}
		if off.GetEnabled() {
			t.Errorf("AddProviderKey(enabled=false) = %v, want disabled", off)
		}
		listed := adListKeys(t, e, p.Id)
		if len(listed) != 2 || !proto.Equal(listed[def.Id], def) || !proto.Equal(listed[off.Id], off) {
			t.Errorf("ListProviderKeys = %v, want exactly %v and %v", listed, def, off)
		}
	})

	t.Run("CreateModelConfig", func(t *testing.T) {
		opts, err := structpb.NewStruct(map[string]any{"reasoning_effort": "high", "max_tokens": 4096.0})
		if err != nil {
			t.Fatal(err)
		}
		c, err := a.CreateModelConfig(ctx, &resolverv1.CreateModelConfigRequest{
			AiProviderId: p.Id, Model: "gpt-4o", DisplayName: "GPT-4o (EU)", ContextLimit: 128000, CompressionThreshold: 80, Options: opts,
		})
		if err != nil {
			t.Fatal(err)
		}
		adIsUUID(t, "id", c.GetId())
		want := &resolverv1.ModelConfig{Id: c.GetId(), AiProviderId: p.Id, Model: "gpt-4o", DisplayName: "GPT-4o (EU)", Enabled: true,
			IsDefault: false, ContextLimit: 128000, CompressionThreshold: 80, Options: opts}
		got := proto.Clone(c).(*resolverv1.ModelConfig)
		got.CreatedAt, got.UpdatedAt = nil, nil
		if !proto.Equal(got, want) {
			t.Errorf("CreateModelConfig = %v, want %v", got, want)
		}
		if listed := adListConfig(t, e, c.Id); !proto.Equal(listed, c) {
			t.Errorf("ListModelConfigs has %v, CreateModelConfig returned %v", listed, c)
		}
		off, err := a.CreateModelConfig(ctx, &resolverv1.CreateModelConfigRequest{AiProviderId: p.Id, Model: "gpt-4o-mini", Enabled: proto.Bool(false), IsDefault: true, ContextLimit: 1000, CompressionThreshold: 0})
		if err != nil {
			t.Fatal(err)
		}
		if off.GetEnabled() || !off.GetIsDefault() || off.GetCompressionThreshold() != 0 {
			t.Errorf("CreateModelConfig(enabled=false, default) = %v", off)
		}
		if off.GetOptions() != nil && len(off.GetOptions().GetFields()) != 0 {
			t.Errorf("options unset, got %v", off.GetOptions())
		}
	})

	t.Run("PutUser-PutUserProviderKey-PutChat", func(t *testing.T) {
		id := uuid.NewString()
		u, err := a.PutUser(ctx, &resolverv1.PutUserRequest{Id: id, Username: "cr-alice"})
		if err != nil {
			t.Fatal(err)
		}
		if u.GetId() != id || u.GetUsername() != "cr-alice" || u.GetCreatedAt() == nil {
			t.Errorf("PutUser = %v", u)
		}
		byok := adWorld(t, e).Provider("cr-byok", "openrouter", resolverv1.ByokPolicy_BYOK_POLICY_OPTIONAL)
		uk, err := a.PutUserProviderKey(ctx, &resolverv1.PutUserProviderKeyRequest{UserId: id, AiProviderId: byok.Id, ApiKey: "sk-cr-user"})
		if err != nil {
			t.Fatal(err)
		}
		adIsUUID(t, "id", uk.GetId())
		if uk.GetUserId() != id || uk.GetAiProviderId() != byok.Id || len(uk.GetFingerprint()) != 16 {
			t.Errorf("PutUserProviderKey = %v", uk)
		}
		// Putting again replaces the key: same row, new fingerprint.
		uk2, err := a.PutUserProviderKey(ctx, &resolverv1.PutUserProviderKeyRequest{UserId: id, AiProviderId: byok.Id, ApiKey: "sk-cr-user-2"})
		if err != nil {
			t.Fatal(err)
		}
		if uk2.GetId() != uk.GetId() || uk2.GetFingerprint() == uk.GetFingerprint() {
			t.Errorf("second PutUserProviderKey = %v, first %v: want the same row with a new fingerprint", uk2, uk)
		}
		if n := adCount(t, e, `SELECT count(*) FROM user_ai_provider_keys WHERE user_id = $1`, id); n != 1 {
			t.Errorf("user has %d key rows, want 1", n)
		}

		cfg := adWorld(t, e).Config(p.Id, "cr-chat-model", false)
		chatID := uuid.NewString()
		c, err := a.PutChat(ctx, &resolverv1.PutChatRequest{Id: chatID, OwnerId: id, ModelConfigId: cfg.Id})
		if err != nil {
			t.Fatal(err)
		}
		if c.GetId() != chatID || c.GetOwnerId() != id || c.GetModelConfigId() != cfg.Id {
			t.Errorf("PutChat = %v", c)
		}
		c, err = a.PutChat(ctx, &resolverv1.PutChatRequest{Id: chatID, OwnerId: id})
		if err != nil {
			t.Fatal(err)
		}
		if c.GetModelConfigId() != "" {
			t.Errorf("PutChat without a model = %v, want no model_config_id", c)
		}
	})
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
