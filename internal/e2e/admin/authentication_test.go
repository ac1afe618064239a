package admin_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/resolverd/resolverd/internal/apitoken"
	"github.com/resolverd/resolverd/internal/rbac"
	"github.com/resolverd/resolverd/internal/testenv"
	resolverv1 "github.com/resolverd/resolverd/proto/resolver/v1"
)

// TestAuthzAuthorizationHeader drives the authentication of docs/CONTRACT.md §3 over the shapes an
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

// TestAuthzRevokedAndExpired: a revoked or expired token is refused (docs/CONTRACT.md §3), and other
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
		// docs/CONTRACT.md §5: a committed change shows within one second.
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
