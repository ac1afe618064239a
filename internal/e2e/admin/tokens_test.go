package admin_test

import (
	"encoding/base64"
	"encoding/hex"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"

	"github.com/resolverd/resolverd/internal/apitoken"
	"github.com/resolverd/resolverd/internal/testenv"
	resolverv1 "github.com/resolverd/resolverd/proto/resolver/v1"
)

// TestAdminE2ETokens: CreateToken shows the token once; ListTokens shows name, scopes and expiry but
// never a token or its hash; RevokeToken ends it.
func TestAdminE2ETokens(t *testing.T) {
	t.Parallel()
	w := testenv.NewWorld(t, testenv.Options{})
	e, a := w.Env, w.Admin
	ctx := e.AsAdmin()

	start := time.Now()
	ci, err := a.CreateToken(ctx, &resolverv1.CreateTokenRequest{Name: "tok-ci", Scopes: []string{"model_config:read", "chat:read", "chat:read"}, TtlSeconds: 3600})
	if err != nil {
		t.Fatal(err)
	}
	adIsUUID(t, "id", ci.GetId())
	if !apitoken.Valid(ci.GetToken()) {
		t.Errorf("token %q does not have the token shape", ci.GetToken())
	}
	if ci.GetName() != "tok-ci" || !slices.Equal(ci.GetScopes(), []string{"chat:read", "model_config:read"}) {
		t.Errorf("CreateToken = name %q scopes %q", ci.GetName(), ci.GetScopes())
	}
	exp := ci.GetExpiresAt().AsTime()
	if ci.GetExpiresAt() == nil || exp.Before(start.Add(3600*time.Second-time.Minute)) || exp.After(time.Now().Add(3600*time.Second+time.Minute)) {
		t.Errorf("expires_at = %v, want about now + 1h", ci.GetExpiresAt())
	}
	forever, err := a.CreateToken(ctx, &resolverv1.CreateTokenRequest{Name: "tok-forever", Scopes: []string{"*"}})
	if err != nil {
		t.Fatal(err)
	}
	if forever.ExpiresAt != nil {
		t.Errorf("ttl 0: expires_at = %v, want none", forever.ExpiresAt)
	}
	// The token works, with its scopes and no others.
	if _, err := a.ListModelConfigs(e.As(ci.GetToken()), &resolverv1.ListModelConfigsRequest{}); err != nil {
		t.Errorf("the new token cannot use its scope: %v", err)
	}
	_, err = a.ListProviders(e.As(ci.GetToken()), &resolverv1.ListProvidersRequest{})
	testenv.WantReason(t, err, codes.PermissionDenied, "MISSING_SCOPE")

	list, err := a.ListTokens(ctx, &resolverv1.ListTokensRequest{})
	if err != nil {
		t.Fatal(err)
	}
	byID := map[string]*resolverv1.Token{}
	for _, tk := range list.GetTokens() {
		byID[tk.GetId()] = tk
	}
	got := byID[ci.GetId()]
	if got == nil || got.GetName() != "tok-ci" || !slices.Equal(got.GetScopes(), ci.GetScopes()) || !got.GetExpiresAt().AsTime().Equal(exp) || got.GetRevokedAt() != nil || got.GetCreatedAt() == nil {
		t.Errorf("ListTokens has %v for %v", got, ci)
	}
	if g := byID[forever.GetId()]; g == nil || g.GetExpiresAt() != nil || !slices.Equal(g.GetScopes(), []string{"*"}) {
		t.Errorf("ListTokens has %v for the token without expiry", g)
	}
	// Never a token or its hash, in any encoding.
	text := adText(list)
	for _, tk := range []string{ci.GetToken(), forever.GetToken(), e.AdminToken, e.WorkerToken} {
		h := apitoken.Hash(tk)
		for _, enc := range []string{tk, strings.TrimPrefix(tk, apitoken.Prefix), hex.EncodeToString(h), base64.StdEncoding.EncodeToString(h),
			base64.RawURLEncoding.EncodeToString(h), base64.RawStdEncoding.EncodeToString(h), string(h)} {
			if strings.Contains(text, enc) {
				t.Errorf("ListTokens shows a token or its hash (%.12q…)", enc)
			}
		}
	}
	fields := (&resolverv1.Token{}).ProtoReflect().Descriptor().Fields()
	for i := range fields.Len() {
		if n := string(fields.Get(i).Name()); n == "token" || strings.Contains(n, "hash") || strings.Contains(n, "secret") {
			t.Errorf("Token has a field %q", n)
		}
	}

	t.Run("RevokeToken", func(t *testing.T) {
		if _, err := a.RevokeToken(ctx, &resolverv1.RevokeTokenRequest{Id: ci.GetId()}); err != nil {
			t.Fatal(err)
		}
		_, err := a.ListModelConfigs(e.As(ci.GetToken()), &resolverv1.ListModelConfigsRequest{})
		testenv.WantReason(t, err, codes.Unauthenticated, "UNAUTHENTICATED")
		list, err := a.ListTokens(ctx, &resolverv1.ListTokensRequest{})
		if err != nil {
			t.Fatal(err)
		}
		for _, tk := range list.GetTokens() {
			if tk.GetId() == ci.GetId() && tk.GetRevokedAt() == nil {
				t.Errorf("ListTokens does not show the revocation: %v", tk)
			}
			if tk.GetId() == forever.GetId() && tk.GetRevokedAt() != nil {
				t.Errorf("another token shows as revoked: %v", tk)
			}
		}
		if _, err := a.ListModelConfigs(e.As(forever.GetToken()), &resolverv1.ListModelConfigsRequest{}); err != nil {
			t.Errorf("the other token stopped working: %v", err)
		}
	})
}
