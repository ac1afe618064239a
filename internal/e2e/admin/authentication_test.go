package admin_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/resolverd/resolverd/internal/apitoken"
	"github.com/resolverd/resolverd/internal/rbac"
	"github.com/resolverd/resolverd/internal/testenv"
	resolverv1 "github.com/resolverd/resolverd/proto/resolver/v1"
)

// TestAuthzAuthorizationHeader drives the authentication of SPEC section 3 over the shapes an
// authorization metadata value can take.
func TestAuthzAuthorizationHeader(t *testing.T) {
	e := testenv.New(t, testenv.Options{})
	unknown, _ := apitoken.New()
	cases := []struct {
		name   string
		values []string // authorization values sent; none means no metadata at all
		ok     bool
	}{
		{"missing", nil, false},
		{"empty", []string{""}, false},
		{"Bearer without a token", []string{"Bearer"}, false},
		{"Bearer and a space", []string{"Bearer "}, false},
		{"Basic scheme", []string{"Basic xyz"}, false},
		{"Basic scheme with a valid token", []string{"Basic " + e.AdminToken}, false},
		{"token without a scheme", []string{e.AdminToken}, false},
		{"garbage token", []string{"Bearer not-a-token"}, false},
		{"right shape but unknown", []string{"Bearer " + unknown.Reveal()}, false},
		{"token and trailing text", []string{"Bearer " + e.AdminToken + " x"}, false},
		{"two values", []string{"Bearer " + e.AdminToken, "Bearer " + e.AdminToken}, false},
		{"two different values", []string{"Bearer " + e.AdminToken, "Bearer " + e.WorkerToken}, false},
		{"Bearer", []string{"Bearer " + e.AdminToken}, true},
		{"lowercase bearer", []string{"bearer " + e.AdminToken}, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := e.Admin.ListProviders(azAs(tc.values...), &resolverv1.ListProvidersRequest{})
			if tc.ok {
				if err != nil {
					t.Fatalf("want success, got %v", err)
				}
				return
			}
			testenv.WantReason(t, err, codes.Unauthenticated, "UNAUTHENTICATED")
			if msg := status.Convert(err).Message(); strings.Contains(msg, e.AdminToken) || strings.Contains(msg, unknown.Reveal()) {
				t.Errorf("the error message carries the token: %q", msg)
			}
		})
	}
	if logs := e.Logs.String(); strings.Contains(logs, e.AdminToken) || strings.Contains(logs, unknown.Reveal()) {
		t.Error("the server log carries a bearer token")
	}
}

// TestAuthzRevokedAndExpired: a revoked or expired token is refused (SPEC section 3), and other
// tokens keep working.
func TestAuthzRevokedAndExpired(t *testing.T) {
	e := testenv.New(t, testenv.Options{})
	list := func(tok string) error {
		_, err := e.Admin.ListProviders(e.As(tok), &resolverv1.ListProvidersRequest{})
		return err
	}
	create := func(t *testing.T, name string, ttl int64) *resolverv1.CreateTokenResponse {
		t.Helper()
		resp, err := e.Admin.CreateToken(e.AsAdmin(), &resolverv1.CreateTokenRequest{
			Name: name, Scopes: []string{string(rbac.AIProviderRead)}, TtlSeconds: ttl,
		})
		if err != nil {
			t.Fatalf("create token: %v", err)
		}
		if err := list(resp.GetToken()); err != nil {
			t.Fatalf("a fresh token is refused: %v", err)
		}
		return resp
	}

	t.Run("revoked through AdminService", func(t *testing.T) {
		tok := create(t, "az-revoked", 0)
		if _, err := e.Admin.RevokeToken(e.AsAdmin(), &resolverv1.RevokeTokenRequest{Id: tok.GetId()}); err != nil {
			t.Fatalf("revoke: %v", err)
		}
		testenv.WantReason(t, list(tok.GetToken()), codes.Unauthenticated, "UNAUTHENTICATED")
		if err := list(e.AdminToken); err != nil {
			t.Fatalf("revoking one token refused another: %v", err)
		}
	})

	t.Run("revoked by another writer", func(t *testing.T) {
		tok := create(t, "az-revoked-sql", 0)
		if _, err := e.Pool.Exec(context.Background(), `UPDATE api_tokens SET revoked_at = now() WHERE id = $1`, tok.GetId()); err != nil {
			t.Fatal(err)
		}
		// SPEC section 5: a committed change shows within one second.
		deadline := time.Now().Add(time.Second)
		for {
			err := list(tok.GetToken())
			if status.Code(err) == codes.Unauthenticated || time.Now().After(deadline) {
				testenv.WantReason(t, err, codes.Unauthenticated, "UNAUTHENTICATED")
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
	})

	t.Run("expired", func(t *testing.T) {
		tok := create(t, "az-expiring", 1)
		if exp := tok.GetExpiresAt(); exp == nil {
			t.Errorf("ttl_seconds 1 gave no expires_at")
		} else if d := time.Until(exp.AsTime()); d <= 0 || d > 2*time.Second {
			t.Errorf("expires_at is %v from now, want about 1s", d)
		}
		time.Sleep(1200 * time.Millisecond)
		testenv.WantReason(t, list(tok.GetToken()), codes.Unauthenticated, "UNAUTHENTICATED")
	})
}

// TestAuthzTokenEscalation: token:write cannot mint a token more powerful than its holder
// (SPEC section 3: CreateToken), and a refused call stores nothing.
func TestAuthzTokenEscalation(t *testing.T) {
	e := testenv.New(t, testenv.Options{})
	tokenWriter := e.Token(t, "az-token-writer", rbac.TokenWrite)
	create := func(tok string, scopes ...string) (*resolverv1.CreateTokenResponse, error) {
		return e.Admin.CreateToken(e.As(tok), &resolverv1.CreateTokenRequest{Name: "az-minted", Scopes: scopes})
	}

	refused := []struct {
		name   string
		token  string
		scopes []string
		scope  string // metadata["scope"] expected
	}{
		{"star", tokenWriter, []string{"*"}, "*"},
		{"another scope", tokenWriter, []string{"ai_provider:write"}, "ai_provider:write"},
		{"its own and another", tokenWriter, []string{"token:write", "ai_provider:write"}, "ai_provider:write"},
		{"worker without token:write", e.WorkerToken, []string{"chat:read"}, "token:write"},
	}
	for _, tc := range refused {
		t.Run(tc.name, func(t *testing.T) {
			before := e.TablesSnapshot(t)
			_, err := create(tc.token, tc.scopes...)
			info := testenv.WantReason(t, err, codes.PermissionDenied, "MISSING_SCOPE")
			if got := info.GetMetadata()["scope"]; got != tc.scope {
				t.Errorf("metadata[scope] = %q, want %q", got, tc.scope)
			}
			if after := e.TablesSnapshot(t); after != before {
				t.Errorf("a refused CreateToken changed the database:\nbefore:\n%s\nafter:\n%s", before, after)
			}
		})
	}

	t.Run("its own scope", func(t *testing.T) {
		resp, err := create(tokenWriter, "token:write")
		if err != nil {
			t.Fatalf("token:write granting token:write: %v", err)
		}
		if !slices.Equal(resp.GetScopes(), []string{"token:write"}) {
			t.Errorf("scopes = %v, want [token:write]", resp.GetScopes())
		}
		if _, err := e.Admin.ListTokens(e.As(resp.GetToken()), &resolverv1.ListTokensRequest{}); err != nil {
			t.Errorf("the minted token cannot use its scope: %v", err)
		}
		_, err = e.Admin.ListProviders(e.As(resp.GetToken()), &resolverv1.ListProvidersRequest{})
		testenv.WantReason(t, err, codes.PermissionDenied, "MISSING_SCOPE")
	})

	t.Run("star grants anything", func(t *testing.T) {
		if _, err := create(e.AdminToken, "*"); err != nil {
			t.Fatalf("`*` granting `*`: %v", err)
		}
	})
}

// TestAuthzCreateTokenUnknownScope: an unknown scope name is a bad argument, not a permission
// problem, for any caller.
func TestAuthzCreateTokenUnknownScope(t *testing.T) {
	e := testenv.New(t, testenv.Options{})
	tokenWriter := e.Token(t, "az-token-writer", rbac.TokenWrite)
	cases := []struct {
		name   string
		token  string
		scopes []string
	}{
		{"admin, unknown", e.AdminToken, []string{"chat:admin"}},
		{"admin, wrong case", e.AdminToken, []string{"CHAT:READ"}},
		{"admin, known and unknown", e.AdminToken, []string{"chat:read", "nope"}},
		{"token writer, unknown", tokenWriter, []string{"superuser"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := e.Admin.CreateToken(e.As(tc.token), &resolverv1.CreateTokenRequest{Name: "az-bad", Scopes: tc.scopes})
			testenv.WantReason(t, err, codes.InvalidArgument, "INVALID_ARGUMENT")
			br := testenv.BadRequest(err)
			if br == nil {
				t.Fatal("no google.rpc.BadRequest detail")
			}
			var fields []string
			for _, v := range br.GetFieldViolations() {
				fields = append(fields, v.GetField())
			}
			if !slices.Contains(fields, "scopes") {
				t.Errorf("field violations %v, want one on scopes", fields)
			}
		})
	}
}

// TestAuthzResolveModelKeyScopes: ResolveModel needs the key-table scopes whenever it reads those
// tables, and a missing one fails the call; it never becomes a fallback (SPEC sections 2.3 and 3).
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

// TestAuthzTokensCannotOutliveOrOutrankTheirAdministrator: a token cannot mint one that outlives
// it, and token:write revokes only tokens whose scopes its holder has (what it could have
// granted), so a narrow or short-lived token administrator cannot entrench itself or lock out
// the holders of wider tokens. Every refusal leaves the tables as they were.
func TestAuthzTokensCannotOutliveOrOutrankTheirAdministrator(t *testing.T) {
	e := testenv.New(t, testenv.Options{})
	hour, err := e.Admin.CreateToken(e.AsAdmin(), &resolverv1.CreateTokenRequest{Name: "az-hour", Scopes: []string{"token:write", "chat:read"}, TtlSeconds: 3600})
	if err != nil {
		t.Fatal(err)
	}
	short := e.As(hour.GetToken())
	mint := func(ttl int64) func(context.Context) error {
		return func(context.Context) error {
			_, err := e.Admin.CreateToken(short, &resolverv1.CreateTokenRequest{Name: "az-child", Scopes: []string{"chat:read"}, TtlSeconds: ttl})
			return err
		}
	}
	for _, ttl := range []int64{0, 7200, 3700} { // never expires, two hours, a little past its own
		t.Run(fmt.Sprintf("ttl %d", ttl), func(t *testing.T) {
			adInvalid(t, e, []string{"ttl_seconds"}, mint(ttl))
		})
	}
	child, err := e.Admin.CreateToken(short, &resolverv1.CreateTokenRequest{Name: "az-child", Scopes: []string{"chat:read"}, TtlSeconds: 1800})
	if err != nil {
		t.Fatalf("a child that expires first: %v", err)
	}
	if !child.GetExpiresAt().AsTime().Before(hour.GetExpiresAt().AsTime()) {
		t.Errorf("child expires %v, parent %v", child.GetExpiresAt().AsTime(), hour.GetExpiresAt().AsTime())
	}

	// Revocation: token:write alone may revoke a token:write token, not the worker's nor `*`.
	narrow := e.Token(t, "az-narrow-admin", rbac.TokenWrite)
	peer := e.Token(t, "az-peer", rbac.TokenWrite)
	list, err := e.Admin.ListTokens(e.AsAdmin(), &resolverv1.ListTokensRequest{})
	if err != nil {
		t.Fatal(err)
	}
	ids := map[string]string{}
	for _, tk := range list.GetTokens() {
		ids[tk.GetName()] = tk.GetId()
	}
	revoke := func(as, name string) func(context.Context) error {
		return func(context.Context) error {
			_, err := e.Admin.RevokeToken(e.As(as), &resolverv1.RevokeTokenRequest{Id: ids[name]})
			return err
		}
	}
	for _, victim := range []string{"test-worker", "test-admin"} {
		id := ids[victim]
		if id == "" {
			t.Fatalf("no token named %q among %v", victim, ids)
		}
		t.Run("revoke "+victim, func(t *testing.T) {
			info, _ := adRefused(t, e, codes.PermissionDenied, "MISSING_SCOPE", revoke(narrow, victim))
			if info.GetMetadata()["scope"] == "" || info.GetMetadata()["scope"] == "token:write" {
				t.Errorf("refused for scope %q, want one the victim holds and the caller does not", info.GetMetadata()["scope"])
			}
		})
	}
	if err := revoke(narrow, "az-peer")(nil); err != nil {
		t.Fatalf("revoking a token:write token with token:write: %v", err)
	}
	_, err = e.Admin.ListTokens(e.As(peer), &resolverv1.ListTokensRequest{})
	testenv.WantReason(t, err, codes.Unauthenticated, "UNAUTHENTICATED")
	if err := revoke(e.AdminToken, "test-worker")(nil); err != nil {
		t.Fatalf("`*` revoking the worker token: %v", err)
	}
	adRefused(t, e, codes.NotFound, "NOT_FOUND", func(context.Context) error {
		_, err := e.Admin.RevokeToken(e.As(narrow), &resolverv1.RevokeTokenRequest{Id: "01234567-89ab-4def-8123-456789abcdef"})
		return err
	})
}

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
