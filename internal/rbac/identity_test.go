package rbac_test

import (
	"testing"
	"time"

	"github.com/resolverd/resolverd/internal/rbac"
)

// TestIdentityPrincipal: a workload identity's caller is named after its subject, holds exactly the
// scopes of its binding (never a system scope, `*` included), and carries its credential's expiry.
func TestIdentityPrincipal(t *testing.T) {
	exp := time.Now().Add(time.Hour)
	p := rbac.Identity("spiffe://example.org/ns/chat/sa/worker", []rbac.Scope{rbac.ChatRead, rbac.All}, &exp)
	if p.Name != "identity:spiffe://example.org/ns/chat/sa/worker" || p.Subject != "spiffe://example.org/ns/chat/sa/worker" {
		t.Fatalf("name %q subject %q", p.Name, p.Subject)
	}
	if p.System != "" || p.Has(rbac.TokenAuthenticate) {
		t.Fatal("a workload identity acts as the system")
	}
	if !p.Has(rbac.ChatRead) || !p.Has(rbac.TokenWrite) || p.ExpiresAt != &exp {
		t.Fatalf("scopes or expiry lost: %+v", p)
	}
}
