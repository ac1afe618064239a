package admin_test

import (
	"context"
	"fmt"
	"slices"
	"testing"

	"google.golang.org/grpc/codes"

	"github.com/resolverd/resolverd/internal/rbac"
	"github.com/resolverd/resolverd/internal/testenv"
	resolverv1 "github.com/resolverd/resolverd/proto/resolver/v1"
)

// TestAuthzTokenEscalation: token:write cannot mint a token more powerful than its holder
// (docs/CONTRACT.md §3: CreateToken), and a refused call stores nothing.
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
