package transport

import (
	"context"
	"errors"
	"fmt"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"github.com/resolverd/resolverd/internal/db"
	"github.com/resolverd/resolverd/internal/dbauthz"
	"github.com/resolverd/resolverd/internal/errs"
	"github.com/resolverd/resolverd/internal/identity"
	"github.com/resolverd/resolverd/internal/rbac"
)

// IdentityLookup finds a workload identity's binding by subject: the scope-checked store, called
// as dbauthz.SystemIdentityAuthenticator.
type IdentityLookup interface {
	WorkloadIdentity(ctx context.Context, subject string) (db.WorkloadIdentity, bool, error)
}

// Identities turn on workload identities (docs/CONTRACT.md §3.1) beside bearer tokens, which keep
// working unchanged.
type Identities struct {
	Lookup IdentityLookup
	// JWT, when set, verifies "authorization: Bearer <JWT>": anything that is not an rsv_ token
	// and has a JWT's shape.
	JWT *identity.JWTVerifier
	// ClientCertificates lets a call without authorization metadata be authenticated by the
	// client certificate its connection's TLS handshake verified (serve --tls-client-ca).
	ClientCertificates bool
}

// UseIdentities makes a accept workload identities as well as bearer tokens.
func (a *Authenticator) UseIdentities(i Identities) { a.identities = i }

// fromJWT authenticates a bearer value that is not an rsv_ token. ok is false when the value is
// not a JWT at all (the caller then refuses it as a malformed token).
func (a *Authenticator) fromJWT(ctx context.Context, value string) (p rbac.Principal, ok bool, err error) {
	tok, isJWT := identity.FromAuthorization(value)
	if !isJWT {
		return rbac.Principal{}, false, nil
	}
	if a.identities.JWT == nil {
		return rbac.Principal{}, true, errs.New(errs.Unauthenticated,
			"the bearer value is a JWT, but this server does not accept JWTs (resolverd serve --jwt-issuer and --jwt-audience); use an rsv_ token")
	}
	v, err := a.identities.JWT.Verify(ctx, tok)
	if errors.Is(err, identity.ErrKeysUnavailable) {
		// Not a resolverd reason: nothing is wrong with the caller or the database; the call may
		// succeed as soon as the keys load (docs/CONTRACT.md §4.3).
		return rbac.Principal{}, true, status.Error(codes.Unavailable, err.Error())
	}
	var refused *identity.Error
	if errors.As(err, &refused) {
		return rbac.Principal{}, true, errs.Wrap(err, errs.Unauthenticated, refused.Message)
	}
	if err != nil {
		return rbac.Principal{}, true, fmt.Errorf("verify a JWT: %w", err)
	}
	p, err = a.bind(ctx, v.Subject, v.ExpiresAt)
	return p, true, err
}

// fromPeer authenticates a call without authorization metadata by its connection's verified
// client certificate. ok is false when there is none to go by.
func (a *Authenticator) fromPeer(ctx context.Context) (p rbac.Principal, ok bool, err error) {
	if !a.identities.ClientCertificates {
		return rbac.Principal{}, false, nil
	}
	pr, found := peer.FromContext(ctx)
	if !found {
		return rbac.Principal{}, false, nil
	}
	info, isTLS := pr.AuthInfo.(credentials.TLSInfo)
	// Only a chain the handshake verified against the client CA; PeerCertificates alone are
	// whatever the client sent.
	if !isTLS || len(info.State.VerifiedChains) == 0 || len(info.State.VerifiedChains[0]) == 0 {
		return rbac.Principal{}, false, nil
	}
	chain := info.State.VerifiedChains[0]
	leaf := chain[0]
	subject, err := identity.CertificateSubject(leaf)
	if err != nil {
		return rbac.Principal{}, true, errs.New(errs.Unauthenticated, err.Error())
	}
	// The handshake checked the chain's validity once, when the connection opened; a connection
	// lives for minutes (docs/CONTRACT.md §15), so each call checks it again: an expired
	// certificate names nobody, as an expired JWT does not.
	notAfter := leaf.NotAfter
	for _, c := range chain[1:] {
		if c.NotAfter.Before(notAfter) {
			notAfter = c.NotAfter
		}
	}
	if time.Now().After(notAfter) {
		return rbac.Principal{}, true, errs.New(errs.Unauthenticated, fmt.Sprintf(
			"the client certificate (or its chain) expired at %s; reconnect with a valid one", notAfter.UTC().Format(time.RFC3339)))
	}
	p, err = a.bind(ctx, subject, &notAfter)
	return p, true, err
}

// bind turns a proven subject into the caller its binding describes, read (through the cache) for
// this call, so a changed or deleted binding applies at once.
func (a *Authenticator) bind(ctx context.Context, subject string, expiresAt *time.Time) (rbac.Principal, error) {
	if a.identities.Lookup == nil {
		return rbac.Principal{}, errs.New(errs.Unauthenticated, "workload identities are not enabled on this server")
	}
	w, ok, err := a.identities.Lookup.WorkloadIdentity(dbauthz.AsSystemRestricted(ctx, dbauthz.SystemIdentityAuthenticator), subject)
	if err != nil {
		return rbac.Principal{}, fmt.Errorf("authenticate workload identity: %w", err)
	}
	if !ok {
		return rbac.Principal{}, errs.New(errs.UnknownIdentity, fmt.Sprintf(
			"the workload identity %q is bound to no scopes: an admin binds it with AdminService/PutWorkloadIdentity", subject),
			"subject", subject)
	}
	scopes := make([]rbac.Scope, len(w.Scopes))
	for i, s := range w.Scopes {
		scopes[i] = rbac.Scope(s)
	}
	return rbac.Identity(subject, scopes, expiresAt), nil
}
