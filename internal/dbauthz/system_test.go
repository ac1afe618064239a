package dbauthz_test

import (
	"context"
	"reflect"
	"testing"

	"github.com/google/uuid"

	"github.com/resolverd/resolverd/internal/dbauthz"
	"github.com/resolverd/resolverd/internal/rbac"
)

// TestAsSystemRestrictedTakesOnlySystemActors: acting as the system needs a system actor; a token's
// caller, or no principal at all, is refused loudly, and the context acts as exactly that actor.
func TestAsSystemRestrictedTakesOnlySystemActors(t *testing.T) {
	for name, p := range map[string]*rbac.Principal{
		"nil":   nil,
		"token": {TokenID: uuid.New(), Name: "worker", Scopes: []rbac.Scope{rbac.All, rbac.TokenAuthenticate}},
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("AsSystemRestricted(%s) did not panic", name)
				}
			}()
			dbauthz.AsSystemRestricted(context.Background(), p)
		}()
	}
	ctx := dbauthz.AsSystemRestricted(context.Background(), dbauthz.SystemAuthenticator)
	got, ok := rbac.FromContext(ctx)
	if !ok || !reflect.DeepEqual(got, *dbauthz.SystemAuthenticator) || got.System != "authenticator" {
		t.Fatalf("the context acts as %+v (%v), want %+v", got, ok, *dbauthz.SystemAuthenticator)
	}
	if err := rbac.Require(ctx, rbac.TokenAuthenticate); err != nil {
		t.Fatalf("the authenticator lacks its own scope: %v", err)
	}
	if err := rbac.Require(ctx, rbac.ChatRead); err == nil {
		t.Fatal("the authenticator holds chat:read")
	}
}
