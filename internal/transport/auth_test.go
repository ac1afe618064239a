package transport_test

import (
	"context"
	"errors"
	"log/slog"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/resolverd/resolverd/internal/apitoken"
	"github.com/resolverd/resolverd/internal/db"
	"github.com/resolverd/resolverd/internal/rbac"
	"github.com/resolverd/resolverd/internal/testenv"
	"github.com/resolverd/resolverd/internal/transport"
	resolverv1 "github.com/resolverd/resolverd/proto/resolver/v1"
)

// azLookup is a TokenLookup over a fixed set of tokens, by hash.
type azLookup map[string]db.Token

func (l azLookup) ActiveToken(_ context.Context, hash []byte) (db.Token, bool, error) {
	t, ok := l[string(hash)]
	return t, ok, nil
}

// azFailingLookup is a token store that cannot be reached.
type azFailingLookup struct{}

func (azFailingLookup) ActiveToken(context.Context, []byte) (db.Token, bool, error) {
	return db.Token{}, false, errors.New("connection refused")
}

// azServerStream is the part of a grpc.ServerStream the stream interceptor uses.
type azServerStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (s azServerStream) Context() context.Context { return s.ctx }

// TestAuthzAuthenticatorPaths covers what the registered services cannot reach: a method without a
// scope rule, the streaming interceptor, and a token store that fails.
func TestAuthzAuthenticatorPaths(t *testing.T) {
	tok, hash := apitoken.New()
	star := azLookup{string(hash): {ID: uuid.New(), Name: "star", Scopes: []string{"*"}}}
	log := slog.New(slog.DiscardHandler)
	incoming := func(values ...string) context.Context {
		md := metadata.MD{}
		for _, v := range values {
			md.Append("authorization", v)
		}
		return metadata.NewIncomingContext(context.Background(), md)
	}
	bearer := "Bearer " + tok.Reveal()
	listProviders := resolverv1.AdminService_ListProviders_FullMethodName

	unary := func(a *transport.Authenticator, ctx context.Context, method string) (reached bool, p rbac.Principal, err error) {
		_, err = a.Unary(ctx, nil, &grpc.UnaryServerInfo{FullMethod: method}, func(ctx context.Context, _ any) (any, error) {
			reached = true
			p, _ = rbac.FromContext(ctx)
			return nil, nil
		})
		return reached, p, err
	}
	stream := func(a *transport.Authenticator, ctx context.Context, method string) (reached bool, p rbac.Principal, err error) {
		err = a.Stream(nil, azServerStream{ctx: ctx}, &grpc.StreamServerInfo{FullMethod: method}, func(_ any, ss grpc.ServerStream) error {
			reached = true
			p, _ = rbac.FromContext(ss.Context())
			return nil
		})
		return reached, p, err
	}
	calls := map[string]func(*transport.Authenticator, context.Context, string) (bool, rbac.Principal, error){"unary": unary, "stream": stream}

	for kind, call := range calls {
		t.Run(kind, func(t *testing.T) {
			a := transport.NewAuthenticator(star, log, transport.RateLimit{}, nil)

			t.Run("method without a rule, star token", func(t *testing.T) {
				reached, _, err := call(a, incoming(bearer), "/resolver.v1.AdminService/NoRuleYet")
				if reached || err == nil {
					t.Fatalf("a method without a scope rule was reached (err %v)", err)
				}
				testenv.WantReason(t, err, codes.PermissionDenied, "MISSING_SCOPE")
			})
			t.Run("method without a rule, no token", func(t *testing.T) {
				reached, _, err := call(a, incoming(), "/resolver.v1.AdminService/NoRuleYet")
				if reached || err == nil {
					t.Fatalf("a method without a scope rule was reached without a token (err %v)", err)
				}
			})
			t.Run("no token", func(t *testing.T) {
				reached, _, err := call(a, incoming(), listProviders)
				if reached {
					t.Fatal("reached the handler without a token")
				}
				testenv.WantReason(t, err, codes.Unauthenticated, "UNAUTHENTICATED")
			})
			t.Run("no metadata at all", func(t *testing.T) {
				reached, _, err := call(a, context.Background(), listProviders)
				if reached {
					t.Fatal("reached the handler without metadata")
				}
				testenv.WantReason(t, err, codes.Unauthenticated, "UNAUTHENTICATED")
			})
			t.Run("valid token carries the principal", func(t *testing.T) {
				reached, p, err := call(a, incoming(bearer), listProviders)
				if err != nil || !reached {
					t.Fatalf("reached=%v err=%v", reached, err)
				}
				if p.Name != "star" || !p.Has(rbac.AIProviderRead) {
					t.Errorf("principal in the handler = %+v", p)
				}
			})
			t.Run("public service without a token", func(t *testing.T) {
				reached, _, err := call(a, incoming(), "/grpc.health.v1.Health/Watch")
				if err != nil || !reached {
					t.Fatalf("reached=%v err=%v", reached, err)
				}
			})
			t.Run("token store down", func(t *testing.T) {
				reached, _, err := call(transport.NewAuthenticator(azFailingLookup{}, log, transport.RateLimit{}, nil), incoming(bearer), listProviders)
				if reached || err == nil {
					t.Fatalf("reached=%v err=%v with the token store down", reached, err)
				}
				if c := status.Code(err); c == codes.OK || c == codes.Unauthenticated {
					t.Errorf("token store down gave %s; a database failure is not a bad token", c)
				}
			})
		})
	}
}

// TestAuthzTokenChangeAppliesToTheNextCall: the authenticator keeps each token's principal between
// calls, but a call always gets the principal of the row read for it: new scopes, a new name or a
// new expiry apply to the very next call, and a principal handed to one call is never changed
// under it.
func TestAuthzTokenChangeAppliesToTheNextCall(t *testing.T) {
	tok, hash := apitoken.New()
	id := uuid.New()
	soon := time.Now().Add(time.Hour)
	rows := azLookup{string(hash): {ID: id, Name: "worker", Scopes: []string{"chat:read"}}}
	a := transport.NewAuthenticator(rows, slog.New(slog.DiscardHandler), transport.RateLimit{}, nil)
	ctx := metadata.NewIncomingContext(context.Background(), metadata.Pairs("authorization", "Bearer "+tok.Reveal()))
	caller := func() rbac.Principal {
		t.Helper()
		var p rbac.Principal
		_, err := a.Unary(ctx, nil, &grpc.UnaryServerInfo{FullMethod: resolverv1.AdminService_GetChat_FullMethodName},
			func(ctx context.Context, _ any) (any, error) {
				p, _ = rbac.FromContext(ctx)
				return nil, nil
			})
		if err != nil {
			t.Fatalf("GetChat: %v", err)
		}
		return p
	}
	first := caller()
	if again := caller(); !reflect.DeepEqual(first, again) || first.TokenID != id || first.Name != "worker" {
		t.Fatalf("the same row made %+v, then %+v", first, again)
	}
	for _, row := range []db.Token{
		{ID: id, Name: "worker", Scopes: []string{"chat:read", "model_config:read"}},
		{ID: id, Name: "renamed", Scopes: []string{"chat:read", "model_config:read"}},
		{ID: id, Name: "renamed", Scopes: []string{"chat:read", "model_config:read"}, ExpiresAt: &soon},
		{ID: id, Name: "renamed", Scopes: []string{"chat:read"}, ExpiresAt: &soon},
	} {
		rows[string(hash)] = row
		p := caller()
		scopes := make([]string, len(p.Scopes))
		for i, s := range p.Scopes {
			scopes[i] = string(s)
		}
		if p.Name != row.Name || !slices.Equal(scopes, row.Scopes) || (p.ExpiresAt == nil) != (row.ExpiresAt == nil) {
			t.Fatalf("after the row became %+v the call's principal is %+v", row, p)
		}
	}
	if len(first.Scopes) != 1 || first.Scopes[0] != rbac.ChatRead || first.Name != "worker" || first.ExpiresAt != nil {
		t.Fatalf("a principal handed out earlier changed: %+v", first)
	}
	// Without chat:read the very next call is refused.
	rows[string(hash)] = db.Token{ID: id, Name: "renamed", Scopes: []string{"model_config:read"}}
	_, err := a.Unary(ctx, nil, &grpc.UnaryServerInfo{FullMethod: resolverv1.AdminService_GetChat_FullMethodName},
		func(context.Context, any) (any, error) { return nil, nil })
	testenv.WantReason(t, err, codes.PermissionDenied, "MISSING_SCOPE")
}
