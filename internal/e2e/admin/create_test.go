package admin_test

import (
	"testing"

	"github.com/google/uuid"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/resolverd/resolverd/internal/testenv"
	resolverv1 "github.com/resolverd/resolverd/proto/resolver/v1"
)

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
			Enabled: true, ByokPolicy: resolverv1.ByokPolicy_BYOK_POLICY_REQUIRED,
			CentralKeyPolicy: resolverv1.CentralKeyPolicy_CENTRAL_KEY_POLICY_OLDEST} // the default, shown (docs/CONTRACT.md §3.5)
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
		if off.GetEnabled() || off.GetByokPolicy() != resolverv1.ByokPolicy_BYOK_POLICY_DISABLED || off.GetDisplayName() != "" || off.GetBaseUrl() != "" ||
			off.GetCentralKeyPolicy() != resolverv1.CentralKeyPolicy_CENTRAL_KEY_POLICY_OLDEST {
			t.Errorf("CreateProvider(enabled=false, policies unset) = %v, want disabled, BYOK_POLICY_DISABLED, CENTRAL_KEY_POLICY_OLDEST, empty display_name and base_url", off)
		}
		on, err := a.CreateProvider(ctx, &resolverv1.CreateProviderRequest{Type: "vercel", Name: "cr-vercel", Enabled: proto.Bool(true), ByokPolicy: resolverv1.ByokPolicy_BYOK_POLICY_OPTIONAL,
			CentralKeyPolicy: resolverv1.CentralKeyPolicy_CENTRAL_KEY_POLICY_ROUND_ROBIN})
		if err != nil {
			t.Fatal(err)
		}
		if !on.GetEnabled() || on.GetByokPolicy() != resolverv1.ByokPolicy_BYOK_POLICY_OPTIONAL || on.GetCentralKeyPolicy() != resolverv1.CentralKeyPolicy_CENTRAL_KEY_POLICY_ROUND_ROBIN {
			t.Errorf("CreateProvider(enabled=true, optional, round robin) = %v", on)
		}
		var stored struct {
			Enabled           bool
			Policy, KeyPolicy string
		}
		if err := e.Pool.QueryRow(t.Context(), `SELECT enabled, byok_policy, central_key_policy FROM ai_providers WHERE id = $1`, off.Id).
			Scan(&stored.Enabled, &stored.Policy, &stored.KeyPolicy); err != nil {
			t.Fatal(err)
		}
		if stored.Enabled || stored.Policy != "disabled" || stored.KeyPolicy != "oldest" {
			t.Errorf("stored enabled/byok_policy/central_key_policy = %v/%q/%q, want false/disabled/oldest", stored.Enabled, stored.Policy, stored.KeyPolicy)
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
