package resolverclient_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/resolverd/resolverd/internal/rbac"
	"github.com/resolverd/resolverd/internal/server"
	"github.com/resolverd/resolverd/internal/testenv"
	"github.com/resolverd/resolverd/internal/transport"
	rc "github.com/resolverd/resolverd/pkg/resolverclient"
	resolverv1 "github.com/resolverd/resolverd/proto/resolver/v1"
)

// world is a real resolverd with fixtures made through AdminService, as an operator would.
type world struct {
	t *testing.T
	e *testenv.Env
}

func (w *world) must(err error) {
	w.t.Helper()
	if err != nil {
		w.t.Fatal(err)
	}
}

func (w *world) provider(typ, name string, policy resolverv1.ByokPolicy) *resolverv1.Provider {
	w.t.Helper()
	p, err := w.e.Admin.CreateProvider(w.e.AsAdmin(), &resolverv1.CreateProviderRequest{Type: typ, Name: name, DisplayName: strings.ToUpper(name), ByokPolicy: policy})
	w.must(err)
	return p
}

func (w *world) config(providerID, model string, isDefault bool) *resolverv1.ModelConfig {
	w.t.Helper()
	opts, err := structpb.NewStruct(map[string]any{"temperature": 0.7})
	w.must(err)
	c, err := w.e.Admin.CreateModelConfig(w.e.AsAdmin(), &resolverv1.CreateModelConfigRequest{
		AiProviderId: providerID, Model: model, DisplayName: model, IsDefault: isDefault, ContextLimit: 128000, CompressionThreshold: 70, Options: opts})
	w.must(err)
	return c
}

func (w *world) user(name string) string {
	w.t.Helper()
	u, err := w.e.Admin.PutUser(w.e.AsAdmin(), &resolverv1.PutUserRequest{Id: uuid.NewString(), Username: name})
	w.must(err)
	return u.GetId()
}

func (w *world) chat(owner, configID string) string {
	w.t.Helper()
	c, err := w.e.Admin.PutChat(w.e.AsAdmin(), &resolverv1.PutChatRequest{Id: uuid.NewString(), OwnerId: owner, ModelConfigId: configID})
	w.must(err)
	return c.GetId()
}

func (w *world) client(token string) *rc.Client {
	w.t.Helper()
	return dial(w.t, w.e.Addr, rc.WithToken(token))
}

func TestAgainstTheRealServer(t *testing.T) {
	w := &world{t: t, e: testenv.New(t, testenv.Options{})}
	ctx := context.Background()
	openai := w.provider("openai", "openai", resolverv1.ByokPolicy_BYOK_POLICY_OPTIONAL)
	anthropic := w.provider("anthropic", "anthropic", resolverv1.ByokPolicy_BYOK_POLICY_REQUIRED)
	bedrock := w.provider("bedrock", "bedrock-us", resolverv1.ByokPolicy_BYOK_POLICY_DISABLED)
	keyless := w.provider("openai-compat", "keyless", resolverv1.ByokPolicy_BYOK_POLICY_DISABLED)
	offline := w.provider("google", "offline", resolverv1.ByokPolicy_BYOK_POLICY_DISABLED)
	gone := w.provider("vercel", "gone", resolverv1.ByokPolicy_BYOK_POLICY_DISABLED)

	central, err := w.e.Admin.AddProviderKey(w.e.AsAdmin(), &resolverv1.AddProviderKeyRequest{ProviderId: openai.GetId(), ApiKey: "sk-central-secret-1"})
	w.must(err)
	gpt := w.config(openai.GetId(), "gpt-4o", true)
	claude := w.config(anthropic.GetId(), "claude-sonnet", false)
	haiku := w.config(bedrock.GetId(), "claude-haiku-bedrock", false)
	local := w.config(keyless.GetId(), "llama", false)
	gemini := w.config(offline.GetId(), "gemini", false)
	retired := w.config(openai.GetId(), "gpt-4-turbo", false)
	orphan := w.config(gone.GetId(), "v0", false)
	_, err = w.e.Admin.DeleteProvider(w.e.AsAdmin(), &resolverv1.DeleteProviderRequest{Id: gone.GetId()})
	w.must(err)
	_, err = w.e.Admin.UpdateModelConfig(w.e.AsAdmin(), &resolverv1.UpdateModelConfigRequest{Id: retired.GetId(), Enabled: proto.Bool(false)})
	w.must(err)
	_, err = w.e.Admin.UpdateProvider(w.e.AsAdmin(), &resolverv1.UpdateProviderRequest{Id: offline.GetId(), Enabled: proto.Bool(false)})
	w.must(err)

	alice, bob := w.user("alice"), w.user("bob")
	aliceKey, err := w.e.Admin.PutUserProviderKey(w.e.AsAdmin(), &resolverv1.PutUserProviderKeyRequest{UserId: alice, AiProviderId: anthropic.GetId(), ApiKey: "sk-ant-alice-secret"})
	w.must(err)
	aliceChat, bobChat := w.chat(alice, gpt.GetId()), w.chat(bob, gpt.GetId())
	c := w.client(w.e.WorkerToken)

	t.Run("central key", func(t *testing.T) {
		res, err := c.Resolve(ctx, aliceChat, "", rc.PurposeChat)
		if err != nil {
			t.Fatal(err)
		}
		want := rc.Resolution{
			ModelConfig: rc.ModelConfig{ID: gpt.GetId(), ProviderID: openai.GetId(), Model: "gpt-4o", DisplayName: "gpt-4o", Enabled: true, IsDefault: true,
				ContextLimit: 128000, CompressionThreshold: 70},
			Provider:   rc.Provider{ID: openai.GetId(), Type: "openai", Name: "openai", DisplayName: "OPENAI", Enabled: true, BYOKPolicy: rc.BYOKOptional},
			Credential: rc.Credential{Source: rc.CredentialSourceCentral, KeyID: central.GetId(), Fingerprint: central.GetFingerprint()},
			Decision:   rc.Decision{RequestedModelConfigID: gpt.GetId()},
		}
		got := *res
		if got.Credential.APIKey.Reveal() != "sk-central-secret-1" || got.ModelConfig.Options["temperature"] != 0.7 {
			t.Fatalf("key or options: %v", got.ModelConfig.Options)
		}
		got.ModelConfig.Options = nil
		if fmt.Sprint(got) != fmt.Sprint(want) || len(got.Credential.Fingerprint) != 16 {
			t.Fatalf("got  %+v\nwant %+v", got, want)
		}
		if s := fmt.Sprintf("%v %+v %#v", res, res, res); strings.Contains(s, "sk-central-secret-1") || !strings.Contains(s, "[REDACTED]") {
			t.Fatalf("printed: %s", s)
		}
	})
	t.Run("user key", func(t *testing.T) {
		res, err := c.Resolve(ctx, aliceChat, claude.GetId(), rc.PurposeTitle)
		if err != nil {
			t.Fatal(err)
		}
		if res.Credential.Source != rc.CredentialSourceUser || res.Credential.KeyID != aliceKey.GetId() || res.Credential.APIKey.Reveal() != "sk-ant-alice-secret" ||
			res.Credential.Fingerprint != aliceKey.GetFingerprint() || res.Provider.BYOKPolicy != rc.BYOKRequired || res.ModelConfig.ID != claude.GetId() {
			t.Fatalf("%+v", res)
		}
	})
	t.Run("bedrock ambient", func(t *testing.T) {
		res, err := c.Resolve(ctx, aliceChat, haiku.GetId(), rc.PurposeTitle)
		if err != nil {
			t.Fatal(err)
		}
		if cr := res.Credential; cr.Source != rc.CredentialSourceAmbient || cr.KeyID != "" || !cr.APIKey.IsZero() || cr.Fingerprint != "" || res.Provider.Type != "bedrock" {
			t.Fatalf("%+v", res)
		}
	})
	t.Run("soft override falls back", func(t *testing.T) {
		res, err := c.Resolve(ctx, aliceChat, retired.GetId(), rc.PurposeSubagent)
		if err != nil {
			t.Fatal(err)
		}
		if d := res.Decision; !d.Fallback || d.FallbackReason != "MODEL_CONFIG_DISABLED" || d.RequestedModelConfigID != retired.GetId() || res.ModelConfig.ID != gpt.GetId() {
			t.Fatalf("%+v", res)
		}
	})

	cases := []struct {
		name     string
		client   *rc.Client
		chat     string
		config   string
		purpose  rc.Purpose
		sentinel error
		code     codes.Code
		check    func(*testing.T, *rc.Error)
	}{
		{"INVALID_ARGUMENT", c, "not-a-uuid", "", 0, rc.ErrInvalidArgument, codes.InvalidArgument, func(t *testing.T, e *rc.Error) {
			fields := map[string]bool{}
			for _, v := range e.FieldViolations {
				fields[v.Field] = v.Description != ""
			}
			if !fields["chat_id"] || !fields["purpose"] {
				t.Errorf("violations %+v", e.FieldViolations)
			}
		}},
		{"UNAUTHENTICATED", w.client("rsd_not-a-real-token"), aliceChat, "", rc.PurposeChat, rc.ErrUnauthenticated, codes.Unauthenticated, func(t *testing.T, e *rc.Error) {
			if strings.Contains(e.Error(), "not-a-real-token") {
				t.Errorf("the token is in the error: %v", e)
			}
		}},
		{"MISSING_SCOPE", w.client(w.e.Token(t, "partial", rbac.ChatRead, rbac.ModelConfigRead)), aliceChat, "", rc.PurposeChat, rc.ErrMissingScope, codes.PermissionDenied, func(t *testing.T, e *rc.Error) {
			if e.Scope() != string(rbac.AIProviderRead) {
				t.Errorf("Scope() = %q", e.Scope())
			}
		}},
		{"CHAT_NOT_FOUND", c, uuid.NewString(), "", rc.PurposeChat, rc.ErrChatNotFound, codes.NotFound, nil},
		{"MODEL_CONFIG_NOT_FOUND", c, aliceChat, uuid.NewString(), rc.PurposeTitle, rc.ErrModelConfigNotFound, codes.NotFound, nil},
		{"MODEL_CONFIG_DISABLED", c, aliceChat, retired.GetId(), rc.PurposeTitle, rc.ErrModelConfigDisabled, codes.FailedPrecondition, nil},
		{"PROVIDER_NOT_FOUND", c, aliceChat, orphan.GetId(), rc.PurposeTitle, rc.ErrProviderNotFound, codes.FailedPrecondition, nil},
		{"PROVIDER_DISABLED", c, aliceChat, gemini.GetId(), rc.PurposeTitle, rc.ErrProviderDisabled, codes.FailedPrecondition, nil},
		{"USER_KEY_REQUIRED", c, bobChat, claude.GetId(), rc.PurposeTitle, rc.ErrUserKeyRequired, codes.FailedPrecondition, nil},
		{"NO_CREDENTIALS", c, aliceChat, local.GetId(), rc.PurposeTitle, rc.ErrNoCredentials, codes.FailedPrecondition, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tc.client.Resolve(ctx, tc.chat, tc.config, tc.purpose)
			e := asError(t, err)
			if !errors.Is(err, tc.sentinel) || e.Code != tc.code || e.Reason != tc.name || e.Attempts != 1 || e.Message == "" {
				t.Fatalf("want %s/%s, got %+v", tc.code, tc.name, e)
			}
			if tc.check != nil {
				tc.check(t, e)
			}
		})
	}

	t.Run("NO_USABLE_MODEL_CONFIG", func(t *testing.T) {
		// The chat's model and the default both unusable.
		_, err := w.e.Admin.UpdateModelConfig(w.e.AsAdmin(), &resolverv1.UpdateModelConfigRequest{Id: gpt.GetId(), Enabled: proto.Bool(false)})
		w.must(err)
		_, err = c.Resolve(ctx, aliceChat, "", rc.PurposeChat)
		if e := asError(t, err); !errors.Is(err, rc.ErrNoUsableModelConfig) || e.Code != codes.FailedPrecondition {
			t.Fatalf("%+v", e)
		}
	})
}

func TestRateLimitedIsNotRetried(t *testing.T) {
	e := testenv.New(t, testenv.Options{Configure: func(cfg *server.Config) {
		cfg.RateLimit = transport.RateLimit{PerSecond: 0.5, Burst: 1}
	}})
	c := dial(t, e.Addr, rc.WithToken(e.WorkerToken))
	ctx := context.Background()
	chat := uuid.NewString()
	if _, err := c.Resolve(ctx, chat, "", rc.PurposeChat); !errors.Is(err, rc.ErrChatNotFound) {
		t.Fatalf("first call: %v", err)
	}
	start := time.Now()
	_, err := c.Resolve(ctx, chat, "", rc.PurposeChat)
	re := asError(t, err)
	if !errors.Is(err, rc.ErrRateLimited) || re.Code != codes.ResourceExhausted || re.RetryAfter <= 0 || re.Attempts != 1 || time.Since(start) > time.Second {
		t.Fatalf("second call: %+v after %v", re, time.Since(start))
	}
}
