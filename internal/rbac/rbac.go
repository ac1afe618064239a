// Package rbac decides what a caller may do: the scopes of docs/CONTRACT.md §3, the authenticated caller
// (Principal) carried in the context, and the check that a caller holds a scope. It has no gRPC and no
// SQL; internal/dbauthz calls Require where each table is read or written.
package rbac

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/resolverd/resolverd/internal/errs"
)

// Scope is a permission a token carries.
type Scope string

// The scopes of docs/CONTRACT.md §3.
const (
	ChatRead               Scope = "chat:read"
	ChatWrite              Scope = "chat:write"
	ModelConfigRead        Scope = "model_config:read"
	ModelConfigWrite       Scope = "model_config:write"
	AIProviderRead         Scope = "ai_provider:read"
	AIProviderWrite        Scope = "ai_provider:write"
	AIProviderKeyRead      Scope = "ai_provider_key:read"
	AIProviderKeyWrite     Scope = "ai_provider_key:write"
	UserAIProviderKeyRead  Scope = "user_ai_provider_key:read"
	UserAIProviderKeyWrite Scope = "user_ai_provider_key:write"
	UserWrite              Scope = "user:write"
	TokenWrite             Scope = "token:write"
	AuditRead              Scope = "audit:read"
	// CredentialReport lets a worker report what happened when it used a key a resolution gave it
	// (ResolverService/ReportCredentialOutcome): it writes the health of that one key row, central
	// or user's, and reads nothing else (docs/CONTRACT.md §17).
	CredentialReport Scope = "credential:report"
	All              Scope = "*"
)

// System scopes are held only by resolverd's own components acting without a caller (see System):
// no token can carry one (ParseScopes refuses them) and `*` does not include them.
const (
	// TokenAuthenticate looks a bearer token up by its hash, before any caller is known.
	TokenAuthenticate Scope = "system:token:authenticate"
	// IdentityAuthenticate looks a workload identity's binding up by the subject a verified
	// credential (JWT, client certificate) names, before any caller is known.
	IdentityAuthenticate Scope = "system:identity:authenticate"
	// AuditAppend writes resolution records to the audit trail.
	AuditAppend Scope = "system:audit:append"
	// AuditExpire removes audit events older than the retention.
	AuditExpire Scope = "system:audit:expire"
	// FingerprintKeyRead reads the per-deployment key that keys credential fingerprints.
	FingerprintKeyRead Scope = "system:fingerprint_key:read"
	// KeyHealthRead counts each provider's central keys that are cooling down or suspended, for the
	// resolverd_keys_unavailable gauge.
	KeyHealthRead Scope = "system:key_health:read"
)

// IsSystem reports whether s is a system scope.
func (s Scope) IsSystem() bool { return strings.HasPrefix(string(s), "system:") }

// Known lists every scope a token may carry, `*` included.
var Known = []Scope{
	ChatRead, ChatWrite, ModelConfigRead, ModelConfigWrite, AIProviderRead, AIProviderWrite,
	AIProviderKeyRead, AIProviderKeyWrite, UserAIProviderKeyRead, UserAIProviderKeyWrite,
	UserWrite, TokenWrite, AuditRead, CredentialReport, All,
}

// WorkerScopes are exactly the scopes a chat worker needs: the five read scopes ResolveModel can
// need, and credential:report to report how the keys it was given fared (docs/CONTRACT.md §3.2).
var WorkerScopes = []Scope{ChatRead, ModelConfigRead, AIProviderRead, AIProviderKeyRead, UserAIProviderKeyRead, CredentialReport}

// ParseScopes validates and de-duplicates scope names, returning them sorted.
func ParseScopes(names []string) ([]Scope, error) {
	seen := make(map[Scope]bool, len(names))
	out := make([]Scope, 0, len(names))
	for _, n := range names {
		s := Scope(n)
		if !slices.Contains(Known, s) {
			return nil, fmt.Errorf("unknown scope %q (known: %v)", n, Known)
		}
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out, nil
}

// Principal is an authenticated caller, or one of resolverd's own components (System).
type Principal struct {
	TokenID uuid.UUID
	Name    string
	// System names the component when the principal is resolverd itself ("" for a token's caller).
	System string
	// Subject is the workload identity the caller proved (a JWT's sub, a client certificate's URI
	// SAN or "cn:<common name>"), whose binding gave Scopes; "" for a bearer token's caller (TokenID
	// is then set). Name is "identity:<subject>".
	Subject string
	Scopes  []Scope
	// ExpiresAt is when the caller's credential expires (nil: never): the token's expiry, or the
	// JWT's exp or client certificate's NotAfter of a workload identity.
	ExpiresAt *time.Time
}

// Identity is the principal of a caller that proved the workload identity subject, bound to scopes,
// with a credential valid until expiresAt.
func Identity(subject string, scopes []Scope, expiresAt *time.Time) Principal {
	return Principal{Name: "identity:" + subject, Subject: subject, Scopes: scopes, ExpiresAt: expiresAt}
}

// Has reports whether the principal holds scope s (directly or, unless s is a system scope,
// through `*`). A system scope is held only by a System principal, whatever a token row says.
func (p Principal) Has(s Scope) bool {
	if s.IsSystem() && p.System == "" {
		return false
	}
	for _, have := range p.Scopes {
		if have == s || (have == All && !s.IsSystem()) {
			return true
		}
	}
	return false
}

// System is the principal of one of resolverd's own components, holding exactly scopes: the
// authenticator looking a token up, the audit writer, retention, dev's demo seed. Contexts carry
// it only through dbauthz.AsSystemRestricted, so a search for that name finds every read and write
// that no caller's token governs.
func System(name string, scopes ...Scope) Principal {
	return Principal{Name: "system:" + name, System: name, Scopes: scopes}
}

// principalKey carries a *Principal: a pointer fits an interface without a copy on the heap, so a
// principal built once (a cached token's, a system actor) costs a call nothing but its context.
type principalKey struct{}

// WithPrincipal returns ctx carrying a copy of p.
func WithPrincipal(ctx context.Context, p Principal) context.Context {
	return context.WithValue(ctx, principalKey{}, &p)
}

// WithShared returns ctx carrying p itself, not a copy: for a principal built once and shared by
// every call it authenticates. Nothing may change p, or its Scopes, once it is shared; FromContext
// hands out copies of it.
func WithShared(ctx context.Context, p *Principal) context.Context {
	if p == nil {
		panic("rbac.WithShared: nil principal")
	}
	return context.WithValue(ctx, principalKey{}, p)
}

// FromContext returns the caller, if one was authenticated.
func FromContext(ctx context.Context) (Principal, bool) {
	if p := caller(ctx); p != nil {
		return *p, true
	}
	return Principal{}, false
}

func caller(ctx context.Context) *Principal {
	p, _ := ctx.Value(principalKey{}).(*Principal)
	return p
}

// Require fails with MISSING_SCOPE (metadata "scope") unless the caller holds every scope given, and
// with UNAUTHENTICATED when the context carries no caller at all.
func Require(ctx context.Context, scopes ...Scope) error {
	p := caller(ctx)
	if p == nil {
		return errs.New(errs.Unauthenticated, "no authenticated caller")
	}
	for _, s := range scopes {
		if !p.Has(s) {
			return errs.New(errs.MissingScope, fmt.Sprintf("the caller's token lacks the scope %s", s), "scope", string(s))
		}
	}
	return nil
}

// CanGrant fails with MISSING_SCOPE unless the caller holds every scope it wants to put on a new
// token, so token:write cannot be used to mint a token more powerful than the caller's own.
func CanGrant(ctx context.Context, scopes []Scope) error {
	return Require(ctx, scopes...)
}

// CanGrantUntil fails with INVALID_ARGUMENT (field ttl_seconds) when a new token would outlive the
// caller's own (expiresAt nil: never expires), so a short-lived token cannot mint a lasting one.
func CanGrantUntil(ctx context.Context, expiresAt *time.Time) error {
	p, ok := FromContext(ctx)
	if !ok {
		return errs.New(errs.Unauthenticated, "no authenticated caller")
	}
	if p.ExpiresAt == nil || (expiresAt != nil && !expiresAt.After(*p.ExpiresAt)) {
		return nil
	}
	left := time.Until(*p.ExpiresAt).Truncate(time.Second)
	return errs.Invalid(errs.FieldViolation{Field: "ttl_seconds", Description: fmt.Sprintf(
		"a token cannot outlive the token that creates it: yours expires at %s, so give ttl_seconds of at most %d",
		p.ExpiresAt.UTC().Format(time.RFC3339), max(int64(left/time.Second), 0))})
}
