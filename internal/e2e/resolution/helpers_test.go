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

	"github.com/resolverd/resolverd/internal/rbac"
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
	// The server learns of another writer's change by notification, within 1s (docs/CONTRACT.md §5).
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

// res is call as the worker (exactly the worker scopes).
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

// reFail is testenv.WantReason plus: the ErrorInfo metadata names each id in ids (key → value).
func reFail(t *testing.T, err error, code codes.Code, reason string, ids map[string]string) {
	t.Helper()
	info := testenv.WantReason(t, err, code, reason)
	for k, v := range ids {
		if got := info.GetMetadata()[k]; got != v {
			t.Errorf("ErrorInfo.metadata[%q] = %q, want %q (metadata %v)", k, got, v, info.GetMetadata())
		}
	}
}

// reSetup is a chat owned by a fresh user whose own model is a fresh config on a fresh provider.
type reSetup struct {
	owner *resolverv1.User
	p     *resolverv1.Provider
	cfg   *resolverv1.ModelConfig
	chat  *resolverv1.Chat
}

func (w *reWorld) reSetup(typ string, policy resolverv1.ByokPolicy) reSetup {
	w.T.Helper()
	s := reSetup{owner: w.person(), p: w.prov(typ, policy)}
	s.cfg = w.cfg(s.p.Id)
	s.chat = w.Chat(s.owner.Id, s.cfg.Id)
	return s
}

// ok resolves the chat's own model as the worker and wants cred.
func (s reSetup) ok(w *reWorld, cred reCred) {
	w.T.Helper()
	res, err := w.res(s.chat.Id, "", reChat)
	reOK(w.T, res, err, reWant{config: s.cfg, provider: s.p, cred: cred, requested: s.cfg.Id})
}

// fail resolves the chat's own model as the worker and wants a credential failure.
func (s reSetup) fail(w *reWorld, reason string) {
	w.T.Helper()
	_, err := w.res(s.chat.Id, "", reChat)
	reFail(w.T, err, reFP, reason, map[string]string{"provider_id": s.p.Id, "model_config_id": s.cfg.Id})
}

// reWithout is a token with the worker's scopes but drop.
func (w *reWorld) reWithout(drop rbac.Scope) context.Context {
	w.T.Helper()
	var scopes []rbac.Scope
	for _, s := range rbac.WorkerScopes {
		if s != drop {
			scopes = append(scopes, s)
		}
	}
	if len(scopes) != len(rbac.WorkerScopes)-1 {
		w.T.Fatalf("%s is not a worker scope", drop)
	}
	return w.As(w.Token(w.T, "re-without-"+reShort(), scopes...))
}

// reDenied wants PERMISSION_DENIED/MISSING_SCOPE naming scope.
func reDenied(t *testing.T, err error, scope rbac.Scope) {
	t.Helper()
	reFail(t, err, codes.PermissionDenied, "MISSING_SCOPE", map[string]string{"scope": string(scope)})
}
