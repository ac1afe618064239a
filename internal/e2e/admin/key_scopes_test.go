package admin_test

import (
	"slices"
	"testing"

	"github.com/google/uuid"
	"google.golang.org/grpc/codes"

	"github.com/resolverd/resolverd/internal/rbac"
	"github.com/resolverd/resolverd/internal/testenv"
	resolverv1 "github.com/resolverd/resolverd/proto/resolver/v1"
)

// TestAuthzResolveModelKeyScopes: ResolveModel needs the key-table scopes whenever it reads those
// tables, and a missing one fails the call; it never becomes a fallback (docs/CONTRACT.md §2.3 and §3).
func TestAuthzResolveModelKeyScopes(t *testing.T) {
	base := []rbac.Scope{rbac.ChatRead, rbac.ModelConfigRead, rbac.AIProviderRead}
	with := func(extra ...rbac.Scope) []rbac.Scope { return append(slices.Clone(base), extra...) }

	w := testenv.NewWorld(t, testenv.Options{})
	tokens := &azTokens{e: w.Env, cache: map[string]string{}}
	alice := w.User("alice")
	// closed: BYOK disabled, a central key. open: BYOK optional, a central key, alice has a key.
	// required: BYOK required, alice has a key. openNoUserKey: BYOK optional, a central key only.
	closed := w.Provider("closed", "openai", resolverv1.ByokPolicy_BYOK_POLICY_DISABLED)
	w.CentralKey(closed.Id, "sk-closed-central")
	open := w.Provider("open", "anthropic", resolverv1.ByokPolicy_BYOK_POLICY_OPTIONAL)
	w.CentralKey(open.Id, "sk-open-central")
	w.UserKey(alice.Id, open.Id, "sk-open-alice")
	required := w.Provider("required", "google", resolverv1.ByokPolicy_BYOK_POLICY_REQUIRED)
	w.UserKey(alice.Id, required.Id, "sk-required-alice")
	openNoUserKey := w.Provider("open-nokey", "openrouter", resolverv1.ByokPolicy_BYOK_POLICY_OPTIONAL)
	w.CentralKey(openNoUserKey.Id, "sk-open-nokey-central")

	closedCfg := w.Config(closed.Id, "closed-model", true)
	openCfg := w.Config(open.Id, "open-model", false)
	requiredCfg := w.Config(required.Id, "required-model", false)
	openNoUserKeyCfg := w.Config(openNoUserKey.Id, "open-nokey-model", false)
	chatOnOpen := w.Chat(alice.Id, openCfg.Id)

	type want struct {
		source resolverv1.CredentialSource // on success
		scope  rbac.Scope                  // MISSING_SCOPE's metadata otherwise
	}
	cases := []struct {
		name    string
		scopes  []rbac.Scope
		config  *resolverv1.ModelConfig
		purpose resolverv1.Purpose
		want    want
	}{
		{"central key without ai_provider_key:read", base, closedCfg, resolverv1.Purpose_PURPOSE_TITLE, want{scope: rbac.AIProviderKeyRead}},
		{"central key with ai_provider_key:read, BYOK disabled", with(rbac.AIProviderKeyRead), closedCfg, resolverv1.Purpose_PURPOSE_TITLE,
			want{source: resolverv1.CredentialSource_CREDENTIAL_SOURCE_CENTRAL}},
		{"BYOK allowed, no user key scope, owner has no key", with(rbac.AIProviderKeyRead), openNoUserKeyCfg, resolverv1.Purpose_PURPOSE_TITLE,
			want{scope: rbac.UserAIProviderKeyRead}},
		{"BYOK allowed, no user key scope, owner has a key", with(rbac.AIProviderKeyRead), openCfg, resolverv1.Purpose_PURPOSE_TITLE,
			want{scope: rbac.UserAIProviderKeyRead}},
		{"BYOK allowed, user key scope, owner has a key", with(rbac.UserAIProviderKeyRead), openCfg, resolverv1.Purpose_PURPOSE_TITLE,
			want{source: resolverv1.CredentialSource_CREDENTIAL_SOURCE_USER}},
		{"BYOK allowed, user key scope only, owner has no key", with(rbac.UserAIProviderKeyRead), openNoUserKeyCfg, resolverv1.Purpose_PURPOSE_TITLE,
			want{scope: rbac.AIProviderKeyRead}},
		{"BYOK required, user key scope", with(rbac.UserAIProviderKeyRead), requiredCfg, resolverv1.Purpose_PURPOSE_TITLE,
			want{source: resolverv1.CredentialSource_CREDENTIAL_SOURCE_USER}},
		{"BYOK required, no user key scope", with(rbac.AIProviderKeyRead), requiredCfg, resolverv1.Purpose_PURPOSE_TITLE,
			want{scope: rbac.UserAIProviderKeyRead}},
		// The chat's own model (open) is resolvable with these scopes; the override (closed) needs
		// ai_provider_key:read. A denied scope must fail the call, not fall back to the chat's model.
		{"soft override: missing scope is not a fallback (subagent)", with(rbac.UserAIProviderKeyRead), closedCfg, resolverv1.Purpose_PURPOSE_SUBAGENT,
			want{scope: rbac.AIProviderKeyRead}},
		{"soft override: missing scope is not a fallback (compaction)", with(rbac.UserAIProviderKeyRead), closedCfg, resolverv1.Purpose_PURPOSE_COMPACTION,
			want{scope: rbac.AIProviderKeyRead}},
		{"soft override: missing scope is not a fallback (personal)", with(rbac.UserAIProviderKeyRead), closedCfg, resolverv1.Purpose_PURPOSE_PERSONAL_OVERRIDE,
			want{scope: rbac.AIProviderKeyRead}},
		// The chat's own model is usable, so PURPOSE_CHAT reads only its keys.
		{"chat's own model needs only its provider's key scope", with(rbac.UserAIProviderKeyRead), nil, resolverv1.Purpose_PURPOSE_CHAT,
			want{source: resolverv1.CredentialSource_CREDENTIAL_SOURCE_USER}},
		{"worker scopes", rbac.WorkerScopes, closedCfg, resolverv1.Purpose_PURPOSE_TITLE,
			want{source: resolverv1.CredentialSource_CREDENTIAL_SOURCE_CENTRAL}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			req := &resolverv1.ResolveModelRequest{ChatId: chatOnOpen.Id, Purpose: tc.purpose}
			if tc.config != nil {
				req.ModelConfigId = tc.config.Id
			}
			res, err := w.Resolver.ResolveModel(w.As(tokens.get(t, tc.scopes...)), req)
			if tc.want.scope != "" {
				info := testenv.WantReason(t, err, codes.PermissionDenied, "MISSING_SCOPE")
				if got := info.GetMetadata()["scope"]; got != string(tc.want.scope) {
					t.Errorf("metadata[scope] = %q, want %q", got, tc.want.scope)
				}
				return
			}
			if err != nil {
				t.Fatalf("want success, got %v", err)
			}
			if got := res.GetCredential().GetSource(); got != tc.want.source {
				t.Errorf("credential source = %v, want %v", got, tc.want.source)
			}
			if res.GetDecision().GetFallback() {
				t.Errorf("unexpected fallback: %v", res.GetDecision())
			}
		})
	}

	t.Run("missing chat without chat:read is MISSING_SCOPE, not CHAT_NOT_FOUND", func(t *testing.T) {
		_, err := w.Resolver.ResolveModel(w.As(tokens.get(t, rbac.ModelConfigRead, rbac.AIProviderRead)),
			&resolverv1.ResolveModelRequest{ChatId: uuid.NewString(), Purpose: resolverv1.Purpose_PURPOSE_CHAT})
		info := testenv.WantReason(t, err, codes.PermissionDenied, "MISSING_SCOPE")
		if got := info.GetMetadata()["scope"]; got != string(rbac.ChatRead) {
			t.Errorf("metadata[scope] = %q, want chat:read", got)
		}
	})

	t.Run("BYOK off for the deployment: user keys are not read", func(t *testing.T) {
		w := testenv.NewWorld(t, testenv.Options{DenyBYOK: true})
		bob := w.User("bob")
		p := w.Provider("open", "anthropic", resolverv1.ByokPolicy_BYOK_POLICY_OPTIONAL)
		w.CentralKey(p.Id, "sk-central")
		w.UserKey(bob.Id, p.Id, "sk-bob")
		c := w.Config(p.Id, "m", true)
		chat := w.Chat(bob.Id, c.Id)
		tok := w.Token(t, "az-central-only", with(rbac.AIProviderKeyRead)...)
		res, err := w.Resolver.ResolveModel(w.As(tok), &resolverv1.ResolveModelRequest{ChatId: chat.Id, Purpose: resolverv1.Purpose_PURPOSE_CHAT})
		if err != nil {
			t.Fatalf("want a central key without user_ai_provider_key:read, got %v", err)
		}
		if got := res.GetCredential().GetSource(); got != resolverv1.CredentialSource_CREDENTIAL_SOURCE_CENTRAL {
			t.Errorf("credential source = %v, want CENTRAL", got)
		}
	})
}
