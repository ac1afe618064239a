package transport_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"log/slog"
	"net/url"
	"testing"
	"time"

	"github.com/google/uuid"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"github.com/resolverd/resolverd/internal/apitoken"
	"github.com/resolverd/resolverd/internal/db"
	"github.com/resolverd/resolverd/internal/identity"
	"github.com/resolverd/resolverd/internal/identity/identitytest"
	"github.com/resolverd/resolverd/internal/rbac"
	"github.com/resolverd/resolverd/internal/testenv"
	"github.com/resolverd/resolverd/internal/transport"
	resolverv1 "github.com/resolverd/resolverd/proto/resolver/v1"
)

// idLookup binds subjects to scopes, in memory.
type idLookup map[string][]string

func (l idLookup) WorkloadIdentity(_ context.Context, subject string) (db.WorkloadIdentity, bool, error) {
	s, ok := l[subject]
	return db.WorkloadIdentity{Subject: subject, Scopes: s}, ok, nil
}

// idCall makes one ResolveModel call through a's unary interceptor and returns the caller the
// handler saw.
func idCall(a *transport.Authenticator, ctx context.Context) (reached bool, p rbac.Principal, err error) {
	info := &grpc.UnaryServerInfo{FullMethod: resolverv1.ResolverService_ResolveModel_FullMethodName}
	_, err = a.Unary(ctx, nil, info, func(ctx context.Context, _ any) (any, error) {
		reached = true
		p, _ = rbac.FromContext(ctx)
		return nil, nil
	})
	return reached, p, err
}

func idBearer(value string) context.Context {
	return metadata.NewIncomingContext(context.Background(), metadata.Pairs("authorization", "Bearer "+value))
}

func workerScopes() []string {
	out := make([]string, len(rbac.WorkerScopes))
	for i, s := range rbac.WorkerScopes {
		out[i] = string(s)
	}
	return out
}

// TestIdentityJWT: a verified JWT of a bound subject is the caller its binding describes; an
// unbound one is UNKNOWN_IDENTITY naming it; a refused one UNAUTHENTICATED saying why; while the
// keys are not loaded, UNAVAILABLE without a resolverd reason; rsv_ tokens work throughout.
func TestIdentityJWT(t *testing.T) {
	iss, err := identitytest.NewIssuer("ES256")
	if err != nil {
		t.Fatal(err)
	}
	defer iss.Close()
	iss.SetDown(true)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	v, err := identity.NewJWTVerifier(ctx, identity.JWTOptions{Issuer: iss.URL, Audience: "resolverd", RetryMax: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	tok, hash := apitoken.New()
	tokens := azLookup{string(hash): {ID: uuid.New(), Name: "worker", Scopes: workerScopes()}}
	a := transport.NewAuthenticator(tokens, slog.New(slog.DiscardHandler), transport.RateLimit{}, nil)
	a.UseIdentities(transport.Identities{Lookup: idLookup{"system:serviceaccount:chat:worker": workerScopes()}, JWT: v})
	bound := iss.Token("system:serviceaccount:chat:worker", "resolverd", time.Hour)

	reached, _, err := idCall(a, idBearer(bound))
	if st := status.Convert(err); reached || st.Code() != codes.Unavailable || testenv.ErrorInfo(st) != nil {
		t.Fatalf("JWT before the keys load: reached=%v %v, want UNAVAILABLE without a reason", reached, err)
	}
	if reached, p, err := idCall(a, idBearer(tok.Reveal())); !reached || err != nil || p.Name != "worker" {
		t.Fatalf("an rsv_ token while the JWT keys are unavailable: %v", err)
	}

	iss.SetDown(false)
	for start := time.Now(); !v.Ready(); time.Sleep(5 * time.Millisecond) {
		if time.Since(start) > 5*time.Second {
			t.Fatal("keys not loaded")
		}
	}
	reached, p, err := idCall(a, idBearer(bound))
	if err != nil || !reached {
		t.Fatalf("a bound subject's JWT: %v", err)
	}
	if p.Subject != "system:serviceaccount:chat:worker" || p.Name != "identity:system:serviceaccount:chat:worker" || p.TokenID != uuid.Nil || !p.Has(rbac.UserAIProviderKeyRead) ||
		p.ExpiresAt == nil || time.Until(*p.ExpiresAt) < 59*time.Minute {
		t.Fatalf("caller %+v", p)
	}

	_, _, err = idCall(a, idBearer(iss.Token("system:serviceaccount:chat:stranger", "resolverd", time.Hour)))
	if info := testenv.WantReason(t, err, codes.Unauthenticated, "UNKNOWN_IDENTITY"); info.GetMetadata()["subject"] != "system:serviceaccount:chat:stranger" {
		t.Errorf("metadata %v, want subject system:serviceaccount:chat:stranger", info.GetMetadata())
	}
	_, _, err = idCall(a, idBearer(iss.Token("system:serviceaccount:chat:worker", "another-service", time.Hour)))
	testenv.WantReason(t, err, codes.Unauthenticated, "UNAUTHENTICATED")
	if st := status.Convert(err); st.Message() != `the JWT's aud does not name "resolverd"` {
		t.Errorf("message %q", st.Message())
	}

	// Without JWTs configured, a JWT is refused saying so; a value of neither shape as before.
	plain := transport.NewAuthenticator(tokens, slog.New(slog.DiscardHandler), transport.RateLimit{}, nil)
	_, _, err = idCall(plain, idBearer(bound))
	testenv.WantReason(t, err, codes.Unauthenticated, "UNAUTHENTICATED")
	if st := status.Convert(err); st.Message() == apitoken.ErrMalformed.Error() {
		t.Errorf("a JWT to a server without --jwt-issuer is refused as a malformed token: %q", st.Message())
	}
	_, _, err = idCall(a, idBearer("not-a-token"))
	if st := status.Convert(err); st.Message() != apitoken.ErrMalformed.Error() {
		t.Errorf("garbage: %q", st.Message())
	}
}

// idPeer is a context whose connection presented cert, verified by the handshake when verified.
func idPeer(cert *x509.Certificate, verified bool) context.Context {
	state := tls.ConnectionState{PeerCertificates: []*x509.Certificate{cert}}
	if verified {
		state.VerifiedChains = [][]*x509.Certificate{{cert}}
	}
	return peer.NewContext(context.Background(), &peer.Peer{AuthInfo: credentials.TLSInfo{State: state}})
}

// TestIdentityClientCertificate: without authorization metadata, the verified client certificate
// names the caller; an unverified one names nobody; a token, when sent, still decides.
func TestIdentityClientCertificate(t *testing.T) {
	spiffe, _ := url.Parse("spiffe://example.org/ns/chat/sa/worker")
	notAfter := time.Now().Add(24 * time.Hour).Truncate(time.Second)
	cert := &x509.Certificate{URIs: []*url.URL{spiffe}, Subject: pkix.Name{CommonName: "worker"}, NotAfter: notAfter}
	tok, hash := apitoken.New()
	tokens := azLookup{string(hash): {ID: uuid.New(), Name: "admin", Scopes: []string{"*"}}}
	a := transport.NewAuthenticator(tokens, slog.New(slog.DiscardHandler), transport.RateLimit{PerSecond: 1, Burst: 1}, nil)
	a.UseIdentities(transport.Identities{Lookup: idLookup{spiffe.String(): workerScopes()}, ClientCertificates: true})

	reached, p, err := idCall(a, idPeer(cert, true))
	if err != nil || !reached || p.Subject != spiffe.String() || !p.ExpiresAt.Equal(notAfter) {
		t.Fatalf("a verified SPIFFE certificate: %+v %v", p, err)
	}
	// Held to its own rate, named by its subject.
	_, _, err = idCall(a, idPeer(cert, true))
	if info := testenv.WantReason(t, err, codes.ResourceExhausted, "RATE_LIMITED"); info.GetMetadata()["subject"] != spiffe.String() {
		t.Errorf("RATE_LIMITED metadata %v, want the subject", info.GetMetadata())
	}
	// The token decides when one is sent, with its own budget.
	withToken := metadata.NewIncomingContext(idPeer(cert, true), metadata.Pairs("authorization", "Bearer "+tok.Reveal()))
	if _, p, err := idCall(a, withToken); err != nil || p.Name != "admin" {
		t.Fatalf("a token over a client certificate: %+v %v", p, err)
	}
	_, _, err = idCall(a, idPeer(cert, false))
	testenv.WantReason(t, err, codes.Unauthenticated, "UNAUTHENTICATED")

	// A certificate past its NotAfter names nobody, even on a connection whose handshake it passed.
	expired := &x509.Certificate{URIs: []*url.URL{spiffe}, NotAfter: time.Now().Add(-time.Second)}
	_, _, err = idCall(a, idPeer(expired, true))
	testenv.WantReason(t, err, codes.Unauthenticated, "UNAUTHENTICATED")

	other := &x509.Certificate{Subject: pkix.Name{CommonName: "stranger"}, NotAfter: notAfter}
	_, _, err = idCall(a, idPeer(other, true))
	if info := testenv.WantReason(t, err, codes.Unauthenticated, "UNKNOWN_IDENTITY"); info.GetMetadata()["subject"] != "cn:stranger" {
		t.Errorf("metadata %v", info.GetMetadata())
	}
	// Off unless the server verifies client certificates.
	off := transport.NewAuthenticator(tokens, slog.New(slog.DiscardHandler), transport.RateLimit{}, nil)
	off.UseIdentities(transport.Identities{Lookup: idLookup{spiffe.String(): workerScopes()}})
	if reached, _, err := idCall(off, idPeer(cert, true)); reached || err == nil {
		t.Fatal("a client certificate authenticated a server that does not take them")
	}
}
