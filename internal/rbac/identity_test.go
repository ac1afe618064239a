package rbac

import (
	"testing"
	"time"
)

// TestIdentityPrincipal: a workload identity's caller is named after its subject, holds exactly the
// scopes of its binding (never a system scope, `*` included), and carries its credential's expiry.
func TestIdentityPrincipal(t *testing.T) {
	exp := time.Now().Add(time.Hour)
	p := Identity("spiffe://example.org/ns/chat/sa/worker", []Scope{ChatRead, All}, &exp)
	if p.Name != "identity:spiffe://example.org/ns/chat/sa/worker" || p.Subject != "spiffe://example.org/ns/chat/sa/worker" {
		t.Fatalf("name %q subject %q", p.Name, p.Subject)
	}
	if p.System != "" || p.Has(TokenAuthenticate) {
		t.Fatal("a workload identity acts as the system")
	}
	if !p.Has(ChatRead) || !p.Has(TokenWrite) || p.ExpiresAt != &exp {
		t.Fatalf("scopes or expiry lost: %+v", p)
	}
}
