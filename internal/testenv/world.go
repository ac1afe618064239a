package testenv

import (
	"testing"
	"time"

	"github.com/google/uuid"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"

	resolverv1 "github.com/resolverd/resolverd/proto/resolver/v1"
)

// World builds fixtures through AdminService, as an operator would: each builder calls the API as
// the admin token and fails T at once when the call fails, so a test reads as the story it sets up.
// It embeds the Env, so w.Admin, w.Pool, w.AsWorker() and the rest are the server's.
//
// A subtest that builds fixtures binds its own *testing.T: &testenv.World{T: t, Env: w.Env}.
type World struct {
	// T is the test the builders fail.
	T *testing.T
	*Env
}

// NewWorld starts a server for t (New with opts) and returns a World on it.
func NewWorld(t *testing.T, opts Options) *World {
	t.Helper()
	return &World{T: t, Env: New(t, opts)}
}

// Provider creates a provider of type typ named name with the BYOK policy.
func (w *World) Provider(name, typ string, policy resolverv1.ByokPolicy) *resolverv1.Provider {
	w.T.Helper()
	p, err := w.Admin.CreateProvider(w.AsAdmin(), &resolverv1.CreateProviderRequest{Type: typ, Name: name, ByokPolicy: policy})
	if err != nil {
		w.T.Fatalf("create provider %s: %v", name, err)
	}
	return p
}

// CentralKey adds an enabled central key to the provider.
func (w *World) CentralKey(providerID, key string) *resolverv1.ProviderKey {
	w.T.Helper()
	k, err := w.Admin.AddProviderKey(w.AsAdmin(), &resolverv1.AddProviderKeyRequest{ProviderId: providerID, ApiKey: key})
	if err != nil {
		w.T.Fatalf("add key: %v", err)
	}
	return k
}

// Config creates an enabled model config for model on the provider (context limit 100000,
// compression threshold 70); isDefault makes it the default.
func (w *World) Config(providerID, model string, isDefault bool) *resolverv1.ModelConfig {
	w.T.Helper()
	c, err := w.Admin.CreateModelConfig(w.AsAdmin(), &resolverv1.CreateModelConfigRequest{
		AiProviderId: providerID, Model: model, IsDefault: isDefault, ContextLimit: 100000, CompressionThreshold: 70,
	})
	if err != nil {
		w.T.Fatalf("create config %s: %v", model, err)
	}
	return c
}

// User puts a user with a fresh id.
func (w *World) User(name string) *resolverv1.User {
	w.T.Helper()
	u, err := w.Admin.PutUser(w.AsAdmin(), &resolverv1.PutUserRequest{Id: uuid.NewString(), Username: name})
	if err != nil {
		w.T.Fatalf("put user %s: %v", name, err)
	}
	return u
}

// UserKey puts the user's own key for the provider (BYOK).
func (w *World) UserKey(userID, providerID, key string) *resolverv1.UserProviderKey {
	w.T.Helper()
	k, err := w.Admin.PutUserProviderKey(w.AsAdmin(), &resolverv1.PutUserProviderKeyRequest{UserId: userID, AiProviderId: providerID, ApiKey: key})
	if err != nil {
		w.T.Fatalf("put user key: %v", err)
	}
	return k
}

// Chat puts a chat with a fresh id owned by ownerID whose own model is configID ("" for none).
func (w *World) Chat(ownerID, configID string) *resolverv1.Chat {
	w.T.Helper()
	c, err := w.Admin.PutChat(w.AsAdmin(), &resolverv1.PutChatRequest{Id: uuid.NewString(), OwnerId: ownerID, ModelConfigId: configID})
	if err != nil {
		w.T.Fatalf("put chat: %v", err)
	}
	return c
}

// DisableConfig turns the model config's enabled off.
func (w *World) DisableConfig(id string) {
	w.T.Helper()
	if _, err := w.Admin.UpdateModelConfig(w.AsAdmin(), &resolverv1.UpdateModelConfigRequest{Id: id, Enabled: proto.Bool(false)}); err != nil {
		w.T.Fatalf("disable config: %v", err)
	}
}

// DisableProvider turns the provider's enabled off.
func (w *World) DisableProvider(id string) {
	w.T.Helper()
	if _, err := w.Admin.UpdateProvider(w.AsAdmin(), &resolverv1.UpdateProviderRequest{Id: id, Enabled: proto.Bool(false)}); err != nil {
		w.T.Fatalf("disable provider: %v", err)
	}
}

// Resolve calls ResolveModel as the worker.
func (w *World) Resolve(chatID, configID string, purpose resolverv1.Purpose) (*resolverv1.ResolveModelResponse, error) {
	return w.Resolver.ResolveModel(w.AsWorker(), &resolverv1.ResolveModelRequest{ChatId: chatID, ModelConfigId: configID, Purpose: purpose})
}

// Report reports outcome for key keyID as the worker (ReportCredentialOutcome); retryAfter 0 leaves
// retry_after unset. It returns the call's answer and error, for the test to judge.
func (w *World) Report(keyID string, outcome resolverv1.CredentialOutcome, retryAfter time.Duration) (*resolverv1.ReportCredentialOutcomeResponse, error) {
	req := &resolverv1.ReportCredentialOutcomeRequest{KeyId: keyID, Outcome: outcome}
	if retryAfter != 0 {
		req.RetryAfter = durationpb.New(retryAfter)
	}
	return w.Resolver.ReportCredentialOutcome(w.AsWorker(), req)
}

// MustReport is Report, failing T when the call fails.
func (w *World) MustReport(keyID string, outcome resolverv1.CredentialOutcome, retryAfter time.Duration) *resolverv1.ReportCredentialOutcomeResponse {
	w.T.Helper()
	r, err := w.Report(keyID, outcome, retryAfter)
	if err != nil {
		w.T.Fatalf("report %s for key %s: %v", outcome, keyID, err)
	}
	return r
}

// RoundRobinProvider creates a provider whose central keys are taken in turn.
func (w *World) RoundRobinProvider(name, typ string, policy resolverv1.ByokPolicy) *resolverv1.Provider {
	w.T.Helper()
	p, err := w.Admin.CreateProvider(w.AsAdmin(), &resolverv1.CreateProviderRequest{Type: typ, Name: name, ByokPolicy: policy,
		CentralKeyPolicy: resolverv1.CentralKeyPolicy_CENTRAL_KEY_POLICY_ROUND_ROBIN})
	if err != nil {
		w.T.Fatalf("create provider %s: %v", name, err)
	}
	return p
}
