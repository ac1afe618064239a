package identitytest

import (
	"context"
	"crypto/sha256"
	"errors"
	"log/slog"
	"time"

	"github.com/google/uuid"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"

	"github.com/resolverd/resolverd/internal/apitoken"
	"github.com/resolverd/resolverd/internal/cache"
	"github.com/resolverd/resolverd/internal/db"
	"github.com/resolverd/resolverd/internal/dbauthz"
	"github.com/resolverd/resolverd/internal/identity"
	"github.com/resolverd/resolverd/internal/rbac"
	"github.com/resolverd/resolverd/internal/transport"
	resolverv1 "github.com/resolverd/resolverd/proto/resolver/v1"
)

// AuthCost is one warm authenticated call of each kind, through the production Authenticator and
// scope-checked store (transport, dbauthz), over an in-memory store that answers as cachedstore
// does once warm (a bounded-cache lookup): what BenchmarkWarmAuthentication in internal/transport
// and `make bench` time. The JWT is shaped like a Kubernetes service-account token (RS256, about
// 1 KiB); each call runs the interceptor and a handler that does nothing.
type AuthCost struct {
	Bearer, JWT func() error
	issuer      *Issuer
	stop        context.CancelFunc
}

// Close stops the issuer and the verifier.
func (c *AuthCost) Close() {
	c.stop()
	c.issuer.Close()
}

// memStore is a warm cachedstore: token and workload identity reads served from bounded caches.
type memStore struct {
	dbauthz.Querier // nil: nothing else is reached
	tokens          *cache.LRU[[sha256.Size]byte, db.Token]
	identities      *cache.LRU[string, db.WorkloadIdentity]
}

func (m memStore) ActiveToken(_ context.Context, hash []byte) (db.Token, bool, error) {
	t, ok := m.tokens.Get([sha256.Size]byte(hash))
	return t, ok, nil
}

func (m memStore) WorkloadIdentity(_ context.Context, subject string) (db.WorkloadIdentity, bool, error) {
	w, ok := m.identities.Get(subject)
	return w, ok, nil
}

// NewAuthCost builds both calls and makes each once, so the next ones are warm.
func NewAuthCost() (*AuthCost, error) {
	iss, err := NewIssuer("RS256")
	if err != nil {
		return nil, err
	}
	ctx, stop := context.WithCancel(context.Background())
	c := &AuthCost{issuer: iss, stop: stop}
	v, err := identity.NewJWTVerifier(ctx, identity.JWTOptions{Issuer: iss.URL, Audience: "resolverd", JWKSURL: iss.JWKSURL()})
	if err != nil {
		c.Close()
		return nil, err
	}
	for start := time.Now(); !v.Ready(); time.Sleep(time.Millisecond) {
		if time.Since(start) > 10*time.Second {
			c.Close()
			return nil, errors.New("the verifier's keys did not load")
		}
	}
	store := memStore{tokens: cache.New[[sha256.Size]byte, db.Token](1000, time.Hour),
		identities: cache.New[string, db.WorkloadIdentity](1000, time.Hour)}
	scopes := make([]string, len(rbac.WorkerScopes))
	for i, s := range rbac.WorkerScopes {
		scopes[i] = string(s)
	}
	tok, hash := apitoken.New()
	store.tokens.Put([sha256.Size]byte(hash), db.Token{ID: uuid.New(), Name: "worker", Scopes: scopes})
	const subject = "system:serviceaccount:chat:chat-worker"
	store.identities.Put(subject, db.WorkloadIdentity{Subject: subject, Scopes: scopes})

	authz := dbauthz.New(store)
	auth := transport.NewAuthenticator(authz, slog.New(slog.DiscardHandler), transport.RateLimit{}, nil)
	auth.UseIdentities(transport.Identities{Lookup: authz, JWT: v})

	claims := iss.Claims(subject, "resolverd", time.Hour)
	claims["kubernetes.io"] = map[string]any{
		"namespace":      "chat",
		"pod":            map[string]any{"name": "chat-worker-7d9c5b6f4-x2k8q", "uid": uuid.NewString()},
		"serviceaccount": map[string]any{"name": "chat-worker", "uid": uuid.NewString()},
		"node":           map[string]any{"name": "ip-10-0-12-34.eu-west-1.compute.internal", "uid": uuid.NewString()},
	}
	jwtToken := iss.Keys()[0].Sign(claims)
	info := &grpc.UnaryServerInfo{FullMethod: resolverv1.ResolverService_ResolveModel_FullMethodName}
	handler := func(context.Context, any) (any, error) { return nil, nil }
	call := func(bearer string) func() error {
		ctx := metadata.NewIncomingContext(context.Background(), metadata.Pairs("authorization", "Bearer "+bearer))
		return func() error {
			_, err := auth.Unary(ctx, nil, info, handler)
			return err
		}
	}
	c.Bearer, c.JWT = call(tok.Reveal()), call(jwtToken)
	for _, f := range []func() error{c.Bearer, c.JWT} {
		if err := f(); err != nil {
			c.Close()
			return nil, err
		}
	}
	return c, nil
}
