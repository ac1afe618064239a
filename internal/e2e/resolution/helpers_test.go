package resolution_test

// The helpers every suite of the package uses (prefixed re): reWorld, the expected answers, and
// reOK and reFail, which check one. The suites are listed in doc.go.

import (
	"context"
	"encoding/hex"
	"strings"
	"sync"
	"testing"

	"github.com/google/uuid"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/resolverd/resolverd/internal/testenv"
	resolverv1 "github.com/resolverd/resolverd/proto/resolver/v1"
)

const (
	reChat     = resolverv1.Purpose_PURPOSE_CHAT
	reSubagent = resolverv1.Purpose_PURPOSE_SUBAGENT
	rePersonal = resolverv1.Purpose_PURPOSE_PERSONAL_OVERRIDE
	reTitle    = resolverv1.Purpose_PURPOSE_TITLE
	reCompact  = resolverv1.Purpose_PURPOSE_COMPACTION

	reDisabled = resolverv1.ByokPolicy_BYOK_POLICY_DISABLED
	reOptional = resolverv1.ByokPolicy_BYOK_POLICY_OPTIONAL
	reRequired = resolverv1.ByokPolicy_BYOK_POLICY_REQUIRED

	reFP = codes.FailedPrecondition
)

var (
	rePurposes = []resolverv1.Purpose{reChat, reSubagent, rePersonal, reTitle, reCompact}
	reSoft     = []resolverv1.Purpose{reSubagent, rePersonal, reCompact}
)

// reWorld is a world that remembers every API key it seeds, so that every error the test receives and
// the server's log can be searched for them.
type reWorld struct {
	*testenv.World
	keys *reKeys
}

type reKeys struct {
	mu   sync.Mutex
	list []string
}

// reNew starts a server for t; when t ends (after its subtests) the server log must hold no seeded key.
func reNew(t *testing.T, opts testenv.Options) *reWorld {
	t.Helper()
	w := &reWorld{World: testenv.NewWorld(t, opts), keys: &reKeys{}}
	// Bearer tokens are secrets too.
	w.keys.list = append(w.keys.list, w.AdminToken, w.WorkerToken)
	t.Cleanup(func() { w.noKeyIn(t, "the server log", w.Logs.String()) })
	return w
}

// in returns the world for subtest t: same server, same seeded keys.
func (w *reWorld) in(t *testing.T) *reWorld {
	return &reWorld{World: &testenv.World{T: t, Env: w.Env}, keys: w.keys}
}

func (w *reWorld) newKey(kind string) string {
	k := "sk-re-" + kind + "-" + strings.ReplaceAll(uuid.NewString(), "-", "")
	w.keys.mu.Lock()
	defer w.keys.mu.Unlock()
	w.keys.list = append(w.keys.list, k)
	return k
}

func (w *reWorld) noKeyIn(t *testing.T, where, text string) {
	t.Helper()
	w.keys.mu.Lock()
	defer w.keys.mu.Unlock()
	for _, k := range w.keys.list {
		if strings.Contains(text, k) {
			t.Errorf("%s contains the seeded API key %q", where, k)
		}
	}
}

// reShort is a random suffix for names that must be unique among live rows.
func reShort() string { return strings.ReplaceAll(uuid.NewString(), "-", "")[:10] }

func (w *reWorld) prov(typ string, policy resolverv1.ByokPolicy) *resolverv1.Provider {
	w.T.Helper()
	return w.Provider("re-"+typ+"-"+reShort(), typ, policy)
}

func (w *reWorld) cfg(providerID string) *resolverv1.ModelConfig {
	w.T.Helper()
	return w.Config(providerID, "model-"+reShort(), false)
}

// def creates a config that becomes the (only) default.
func (w *reWorld) def(providerID string) *resolverv1.ModelConfig {
	w.T.Helper()
	return w.Config(providerID, "default-"+reShort(), true)
}

func (w *reWorld) person() *resolverv1.User {
	w.T.Helper()
	return w.User("re-user-" + reShort())
}

// reCred is a credential as ResolveModel should answer it; the helpers that seed keys return it.
type reCred struct {
	source resolverv1.CredentialSource
	keyID  string
	apiKey string
	fp     string
}

var reAmbient = reCred{source: resolverv1.CredentialSource_CREDENTIAL_SOURCE_AMBIENT}

// central adds an enabled central key through AdminService/AddProviderKey.
func (w *reWorld) central(providerID string) reCred {
	w.T.Helper()
	key := w.newKey("central")
	k := w.CentralKey(providerID, key)
	return reCred{resolverv1.CredentialSource_CREDENTIAL_SOURCE_CENTRAL, k.Id, key, k.Fingerprint}
}

// own puts the user's own key through AdminService/PutUserProviderKey.
func (w *reWorld) own(userID, providerID string) reCred {
	w.T.Helper()
	key := w.newKey("user")
	k := w.UserKey(userID, providerID, key)
	return reCred{resolverv1.CredentialSource_CREDENTIAL_SOURCE_USER, k.Id, key, k.Fingerprint}
}

// rotate calls AdminService/RotateProviderKey.
func (w *reWorld) rotate(providerID string) reCred {
	w.T.Helper()
	key := w.newKey("rotated")
	k, err := w.Admin.RotateProviderKey(w.AsAdmin(), &resolverv1.RotateProviderKeyRequest{ProviderId: providerID, ApiKey: key})
	if err != nil {
		w.T.Fatalf("rotate: %v", err)
	}
	return reCred{resolverv1.CredentialSource_CREDENTIAL_SOURCE_CENTRAL, k.Id, key, k.Fingerprint}
}

func (w *reWorld) setKeyEnabled(keyID string, enabled bool) {
	w.T.Helper()
	if _, err := w.Admin.SetProviderKeyEnabled(w.AsAdmin(), &resolverv1.SetProviderKeyEnabledRequest{Id: keyID, Enabled: proto.Bool(enabled)}); err != nil {
		w.T.Fatalf("set key enabled: %v", err)
	}
}

// psql changes the database as another writer would.
func (w *reWorld) psql(sql string, args ...any) {
	w.T.Helper()
	if _, err := w.Pool.Exec(context.Background(), sql, args...); err != nil {
		w.T.Fatalf("psql %q: %v", sql, err)
	}
	// The server learns of another writer's change by notification, within 1s (SPEC 5).
	w.Sync(w.T)
}

// call is ResolveModel with ctx; a returned error must not contain a seeded key.
func (w *reWorld) call(ctx context.Context, chatID, configID string, p resolverv1.Purpose) (*resolverv1.ResolveModelResponse, error) {
	w.T.Helper()
	res, err := w.Resolver.ResolveModel(ctx, &resolverv1.ResolveModelRequest{ChatId: chatID, ModelConfigId: configID, Purpose: p})
	if err != nil {
		w.noKeyIn(w.T, "the error", reErrText(err))
	}
	return res, err
}

// res is call as the worker (exactly the five read scopes).
func (w *reWorld) res(chatID, configID string, p resolverv1.Purpose) (*resolverv1.ResolveModelResponse, error) {
	w.T.Helper()
	return w.call(w.AsWorker(), chatID, configID, p)
}

// reErrText is everything an error shows a caller: message, ErrorInfo and BadRequest.
func reErrText(err error) string {
	st, _ := status.FromError(err)
	parts := []string{err.Error(), st.Message()}
	if info := testenv.ErrorInfo(st); info != nil {
		parts = append(parts, info.GetReason(), info.GetDomain())
		for k, v := range info.GetMetadata() {
			parts = append(parts, k, v)
		}
	}
	if br := testenv.BadRequest(err); br != nil {
		for _, v := range br.GetFieldViolations() {
			parts = append(parts, v.GetField(), v.GetDescription())
		}
	}
	return strings.Join(parts, "\n")
}

// reWant is an expected ResolveModel answer.
type reWant struct {
	config    *resolverv1.ModelConfig
	provider  *resolverv1.Provider
	cred      reCred
	requested string
	fallback  bool
	reason    string
}

// reOK fails unless the call succeeded with want.
func reOK(t *testing.T, res *resolverv1.ResolveModelResponse, err error, want reWant) {
	t.Helper()
	if err != nil {
		t.Fatalf("want success, got %v", reErrText(err))
	}
	check := func(field string, got, want any) {
		t.Helper()
		if got != want {
			t.Errorf("%s = %v, want %v", field, got, want)
		}
	}
	check("model_config.id", res.GetModelConfig().GetId(), want.config.GetId())
	check("model_config.model", res.GetModelConfig().GetModel(), want.config.GetModel())
	check("model_config.ai_provider_id", res.GetModelConfig().GetAiProviderId(), want.provider.GetId())
	check("model_config.display_name", res.GetModelConfig().GetDisplayName(), want.config.GetDisplayName())
	check("model_config.is_default", res.GetModelConfig().GetIsDefault(), want.config.GetIsDefault())
	check("model_config.context_limit", res.GetModelConfig().GetContextLimit(), want.config.GetContextLimit())
	check("model_config.compression_threshold", res.GetModelConfig().GetCompressionThreshold(), want.config.GetCompressionThreshold())
	if !proto.Equal(res.GetModelConfig().GetOptions(), want.config.GetOptions()) {
		t.Errorf("model_config.options = %v, want %v", res.GetModelConfig().GetOptions(), want.config.GetOptions())
	}
	check("model_config.enabled (a served config is enabled)", res.GetModelConfig().GetEnabled(), true)
	check("provider.id", res.GetProvider().GetId(), want.provider.GetId())
	check("provider.type", res.GetProvider().GetType(), want.provider.GetType())
	check("provider.name", res.GetProvider().GetName(), want.provider.GetName())
	check("provider.display_name", res.GetProvider().GetDisplayName(), want.provider.GetDisplayName())
	check("provider.base_url", res.GetProvider().GetBaseUrl(), want.provider.GetBaseUrl())
	check("provider.enabled (a served provider is enabled)", res.GetProvider().GetEnabled(), true)
	check("credential.source", res.GetCredential().GetSource(), want.cred.source)
	check("credential.key_id", res.GetCredential().GetKeyId(), want.cred.keyID)
	if got := res.GetCredential().GetApiKey(); got != want.cred.apiKey {
		t.Errorf("credential.api_key is not the expected key (source %v, key %s)", want.cred.source, want.cred.keyID)
	}
	check("credential.fingerprint", res.GetCredential().GetFingerprint(), want.cred.fp)
	if fp := res.GetCredential().GetFingerprint(); want.cred.fp != "" {
		if _, err := hex.DecodeString(fp); err != nil || len(fp) != 16 {
			t.Errorf("credential.fingerprint = %q, want 16 hex characters", fp)
		}
	}
	check("decision.requested_model_config_id", res.GetDecision().GetRequestedModelConfigId(), want.requested)
	check("decision.fallback", res.GetDecision().GetFallback(), want.fallback)
	check("decision.fallback_reason", res.GetDecision().GetFallbackReason(), want.reason)
}

// reFail is wantReason plus: the ErrorInfo metadata names each id in ids (key → value).
func reFail(t *testing.T, err error, code codes.Code, reason string, ids map[string]string) {
	t.Helper()
	info := testenv.WantReason(t, err, code, reason)
	for k, v := range ids {
		if got := info.GetMetadata()[k]; got != v {
			t.Errorf("ErrorInfo.metadata[%q] = %q, want %q (metadata %v)", k, got, v, info.GetMetadata())
		}
	}
}

// TestResolveE2EPurposes covers SPEC 2.3 beyond the broken-override matrix.
func TestResolveE2EPurposes(t *testing.T) {
	t.Parallel()
	w := reNew(t, testenv.Options{})
	owner := w.person()
	pa := w.prov("openai", reOptional)
	ka := w.central(pa.Id)
	own := w.cfg(pa.Id)
	chat := w.Chat(owner.Id, own.Id)
	// The override's provider and config carry every optional field, so the answer's are compared.
	pb, err := w.Admin.CreateProvider(w.AsAdmin(), &resolverv1.CreateProviderRequest{Type: "anthropic",
		Name: "re-rich-" + reShort(), DisplayName: "Claude (EU)", BaseUrl: "https://eu.example.com/v1", ByokPolicy: reOptional})
	if err != nil {
		t.Fatal(err)
	}
	kb := w.central(pb.Id)
	opts, err := structpb.NewStruct(map[string]any{"temperature": 0.2, "tools": []any{"search"}, "nested": map[string]any{"a": true}})
	if err != nil {
		t.Fatal(err)
	}
	over, err := w.Admin.CreateModelConfig(w.AsAdmin(), &resolverv1.CreateModelConfigRequest{AiProviderId: pb.Id,
		Model: "claude-x", DisplayName: "Claude X", ContextLimit: 200000, CompressionThreshold: 55, Options: opts})
	if err != nil {
		t.Fatal(err)
	}

	t.Run("empty model_config_id is the chat's own model for every purpose", func(t *testing.T) {
		w := w.in(t)
		for _, p := range rePurposes {
			res, err := w.res(chat.Id, "", p)
			reOK(t, res, err, reWant{config: own, provider: pa, cred: ka, requested: own.Id})
		}
	})

	t.Run("a usable override answers with itself and its provider's key for every purpose", func(t *testing.T) {
		w := w.in(t)
		for _, p := range rePurposes {
			res, err := w.res(chat.Id, over.Id, p)
			reOK(t, res, err, reWant{config: over, provider: pb, cred: kb, requested: over.Id})
		}
	})

	t.Run("empty model_config_id is resolved as PURPOSE_CHAT for every purpose", func(t *testing.T) {
		w := w.in(t)
		pd := w.prov("google", reDisabled)
		kd := w.central(pd.Id)
		def := w.def(pd.Id)
		px := w.prov("vercel", reDisabled)
		w.central(px.Id)
		broken := w.cfg(px.Id)
		chat2 := w.Chat(owner.Id, broken.Id)
		w.DisableConfig(broken.Id)
		for _, p := range rePurposes {
			res, err := w.res(chat2.Id, "", p)
			reOK(t, res, err, reWant{config: def, provider: pd, cred: kd, requested: broken.Id, fallback: true, reason: "MODEL_CONFIG_DISABLED"})
		}
		// The chat's own model deleted (by AdminService), then a chat with no model at all.
		gone := w.cfg(px.Id)
		chat4 := w.Chat(owner.Id, gone.Id)
		if _, err := w.Admin.DeleteModelConfig(w.AsAdmin(), &resolverv1.DeleteModelConfigRequest{Id: gone.Id}); err != nil {
			t.Fatal(err)
		}
		chat5 := w.Chat(owner.Id, "")
		for _, p := range rePurposes {
			res, err := w.res(chat4.Id, "", p)
			reOK(t, res, err, reWant{config: def, provider: pd, cred: kd, requested: gone.Id, fallback: true, reason: "MODEL_CONFIG_NOT_FOUND"})
			res, err = w.res(chat5.Id, "", p)
			reOK(t, res, err, reWant{config: def, provider: pd, cred: kd, requested: "", fallback: true, reason: "MODEL_CONFIG_NOT_FOUND"})
		}
		// A chat whose own model has no credential: PURPOSE_CHAT's rule makes it an error, for every purpose.
		pn := w.prov("azure", reDisabled)
		nocred := w.cfg(pn.Id)
		chat3 := w.Chat(owner.Id, nocred.Id)
		for _, p := range rePurposes {
			_, err := w.res(chat3.Id, "", p)
			reFail(t, err, reFP, "NO_CREDENTIALS", map[string]string{"provider_id": pn.Id})
		}
	})

	t.Run("title override reads the override provider's keys, fresh after every change", func(t *testing.T) {
		w := w.in(t)
		u := w.person()
		userA := w.own(u.Id, pa.Id) // the owner has a key for the chat's provider A only
		c := w.Chat(u.Id, own.Id)
		res, err := w.res(c.Id, "", reChat)
		reOK(t, res, err, reWant{config: own, provider: pa, cred: userA, requested: own.Id})

		pt := w.prov("anthropic", reOptional)
		k1 := w.central(pt.Id)
		title := w.cfg(pt.Id)
		res, err = w.res(c.Id, title.Id, reTitle)
		reOK(t, res, err, reWant{config: title, provider: pt, cred: k1, requested: title.Id})

		userT := w.own(u.Id, pt.Id)
		res, err = w.res(c.Id, title.Id, reTitle)
		reOK(t, res, err, reWant{config: title, provider: pt, cred: userT, requested: title.Id})
		if _, err := w.Admin.DeleteUserProviderKey(w.AsAdmin(), &resolverv1.DeleteUserProviderKeyRequest{Id: userT.keyID}); err != nil {
			t.Fatal(err)
		}
		res, err = w.res(c.Id, title.Id, reTitle)
		reOK(t, res, err, reWant{config: title, provider: pt, cred: k1, requested: title.Id})

		// AdminService rotation: the very next resolution answers with the new key.
		k2 := w.rotate(pt.Id)
		res, err = w.res(c.Id, title.Id, reTitle)
		reOK(t, res, err, reWant{config: title, provider: pt, cred: k2, requested: title.Id})
		if k2.fp == k1.fp || k2.keyID == k1.keyID {
			t.Errorf("rotation returned the old key's id or fingerprint")
		}
		k3 := w.rotate(pt.Id)
		res, err = w.res(c.Id, title.Id, reTitle)
		reOK(t, res, err, reWant{config: title, provider: pt, cred: k3, requested: title.Id})

		// psql disables every key of the title provider: BYOK is allowed there, so USER_KEY_REQUIRED.
		w.psql(`UPDATE ai_provider_keys SET enabled = false WHERE provider_id = $1`, pt.Id)
		_, err = w.res(c.Id, title.Id, reTitle)
		reFail(t, err, reFP, "USER_KEY_REQUIRED", map[string]string{"provider_id": pt.Id, "model_config_id": title.Id})
		// ... and turns BYOK off for it: NO_CREDENTIALS.
		w.psql(`UPDATE ai_providers SET byok_policy = 'disabled' WHERE id = $1`, pt.Id)
		_, err = w.res(c.Id, title.Id, reTitle)
		reFail(t, err, reFP, "NO_CREDENTIALS", map[string]string{"provider_id": pt.Id, "model_config_id": title.Id})
		// psql re-enables the second key: it is now the oldest enabled one.
		w.psql(`UPDATE ai_provider_keys SET enabled = true WHERE id = $1`, k2.keyID)
		res, err = w.res(c.Id, title.Id, reTitle)
		reOK(t, res, err, reWant{config: title, provider: pt, cred: k2, requested: title.Id})
		// psql disables the title provider, then the title config.
		w.psql(`UPDATE ai_providers SET enabled = false WHERE id = $1`, pt.Id)
		_, err = w.res(c.Id, title.Id, reTitle)
		reFail(t, err, reFP, "PROVIDER_DISABLED", map[string]string{"model_config_id": title.Id, "provider_id": pt.Id})
		w.psql(`UPDATE chat_model_configs SET enabled = false WHERE id = $1`, title.Id)
		_, err = w.res(c.Id, title.Id, reTitle)
		reFail(t, err, reFP, "MODEL_CONFIG_DISABLED", map[string]string{"model_config_id": title.Id})
		// The chat's own model is untouched throughout.
		res, err = w.res(c.Id, "", reTitle)
		reOK(t, res, err, reWant{config: own, provider: pa, cred: userA, requested: own.Id})
	})

	t.Run("PURPOSE_CHAT with no usable default", func(t *testing.T) {
		w := w.in(t)
		pd := w.prov("google", reDisabled)
		kd := w.central(pd.Id)
		def := w.def(pd.Id)
		px := w.prov("openrouter", reDisabled)
		w.central(px.Id)
		broken := w.cfg(px.Id)
		w.DisableConfig(broken.Id)

		w.DisableConfig(def.Id)
		_, err := w.res(chat.Id, broken.Id, reChat)
		reFail(t, err, reFP, "NO_USABLE_MODEL_CONFIG", map[string]string{"model_config_id": broken.Id})
		// The requested config is the default itself.
		_, err = w.res(chat.Id, def.Id, reChat)
		reFail(t, err, reFP, "NO_USABLE_MODEL_CONFIG", nil)
		// The default enabled again answers; then psql disables its provider.
		if _, err := w.Admin.UpdateModelConfig(w.AsAdmin(), &resolverv1.UpdateModelConfigRequest{Id: def.Id, Enabled: proto.Bool(true)}); err != nil {
			t.Fatal(err)
		}
		res, err := w.res(chat.Id, broken.Id, reChat)
		reOK(t, res, err, reWant{config: def, provider: pd, cred: kd, requested: broken.Id, fallback: true, reason: "MODEL_CONFIG_DISABLED"})
		w.psql(`UPDATE ai_providers SET enabled = false WHERE id = $1`, pd.Id)
		_, err = w.res(chat.Id, broken.Id, reChat)
		reFail(t, err, reFP, "NO_USABLE_MODEL_CONFIG", nil)
		// No default at all.
		if _, err := w.Admin.DeleteModelConfig(w.AsAdmin(), &resolverv1.DeleteModelConfigRequest{Id: def.Id}); err != nil {
			t.Fatal(err)
		}
		_, err = w.res(chat.Id, broken.Id, reChat)
		reFail(t, err, reFP, "NO_USABLE_MODEL_CONFIG", nil)
		_, err = w.res(chat.Id, uuid.NewString(), reChat)
		reFail(t, err, reFP, "NO_USABLE_MODEL_CONFIG", nil)
	})

	t.Run("PURPOSE_CHAT falling back to a default without credentials fails", func(t *testing.T) {
		w := w.in(t)
		pd := w.prov("google", reDisabled)
		def := w.def(pd.Id) // no key, BYOK disabled
		_, err := w.res(chat.Id, uuid.NewString(), reChat)
		reFail(t, err, reFP, "NO_CREDENTIALS", map[string]string{"provider_id": pd.Id, "model_config_id": def.Id})
	})

	t.Run("soft override when the chat's own model is unusable too", func(t *testing.T) {
		w := w.in(t)
		pd := w.prov("google", reDisabled)
		kd := w.central(pd.Id)
		def := w.def(pd.Id)
		px := w.prov("openrouter", reDisabled)
		w.central(px.Id)
		ownBroken := w.cfg(px.Id)
		c := w.Chat(owner.Id, ownBroken.Id)
		w.DisableProvider(px.Id)
		overBroken := w.cfg(pb.Id)
		w.DisableConfig(overBroken.Id)
		for _, p := range reSoft {
			// The chat's own model is resolved as PURPOSE_CHAT: it falls back to the default.
			res, err := w.res(c.Id, overBroken.Id, p)
			reOK(t, res, err, reWant{config: def, provider: pd, cred: kd, requested: overBroken.Id, fallback: true, reason: "MODEL_CONFIG_DISABLED"})
		}
		w.DisableConfig(def.Id)
		for _, p := range reSoft {
			_, err := w.res(c.Id, overBroken.Id, p)
			reFail(t, err, reFP, "NO_USABLE_MODEL_CONFIG", nil)
		}
		// The chat's own model has no credential: an error, not a second fallback.
		pn := w.prov("azure", reDisabled)
		ownNoCred := w.cfg(pn.Id)
		c2 := w.Chat(owner.Id, ownNoCred.Id)
		for _, p := range reSoft {
			_, err := w.res(c2.Id, overBroken.Id, p)
			reFail(t, err, reFP, "NO_CREDENTIALS", map[string]string{"provider_id": pn.Id})
		}
	})
}
