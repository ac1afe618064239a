package transport

import (
	"context"
	"encoding/binary"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync/atomic"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"

	"github.com/resolverd/resolverd/internal/apitoken"
	"github.com/resolverd/resolverd/internal/db"
	"github.com/resolverd/resolverd/internal/dbauthz"
	"github.com/resolverd/resolverd/internal/errs"
	"github.com/resolverd/resolverd/internal/rbac"
	resolverv1 "github.com/resolverd/resolverd/proto/resolver/v1"
)

// PublicServices are reachable without a token: probes and grpcurl's reflection.
var PublicServices = map[string]bool{
	"grpc.health.v1.Health":                    true,
	"grpc.reflection.v1.ServerReflection":      true,
	"grpc.reflection.v1alpha.ServerReflection": true,
}

// MethodScopes lists, for every authenticated RPC, the scopes it needs on every call. The
// interceptor refuses a call that lacks them before the handler runs, and refuses any method that
// is not listed (a new RPC without a rule cannot be reached). The store wrapper checks again, table
// by table, including the scopes a call needs only on some paths (the key tables of ResolveModel).
var MethodScopes = map[string][]rbac.Scope{
	resolverv1.ResolverService_ResolveModel_FullMethodName:            {rbac.ChatRead, rbac.ModelConfigRead, rbac.AIProviderRead},
	resolverv1.ResolverService_ReportCredentialOutcome_FullMethodName: {rbac.CredentialReport},

	resolverv1.AdminService_CreateProvider_FullMethodName: {rbac.AIProviderWrite},
	resolverv1.AdminService_UpdateProvider_FullMethodName: {rbac.AIProviderWrite},
	resolverv1.AdminService_DeleteProvider_FullMethodName: {rbac.AIProviderWrite},
	resolverv1.AdminService_GetProvider_FullMethodName:    {rbac.AIProviderRead},
	resolverv1.AdminService_ListProviders_FullMethodName:  {rbac.AIProviderRead},

	resolverv1.AdminService_AddProviderKey_FullMethodName:        {rbac.AIProviderKeyWrite},
	resolverv1.AdminService_RotateProviderKey_FullMethodName:     {rbac.AIProviderKeyWrite},
	resolverv1.AdminService_SetProviderKeyEnabled_FullMethodName: {rbac.AIProviderKeyWrite},
	resolverv1.AdminService_DeleteProviderKey_FullMethodName:     {rbac.AIProviderKeyWrite},
	resolverv1.AdminService_ListProviderKeys_FullMethodName:      {rbac.AIProviderKeyRead},

	resolverv1.AdminService_CreateModelConfig_FullMethodName: {rbac.ModelConfigWrite},
	resolverv1.AdminService_UpdateModelConfig_FullMethodName: {rbac.ModelConfigWrite},
	resolverv1.AdminService_DeleteModelConfig_FullMethodName: {rbac.ModelConfigWrite},
	resolverv1.AdminService_GetModelConfig_FullMethodName:    {rbac.ModelConfigRead},
	resolverv1.AdminService_ListModelConfigs_FullMethodName:  {rbac.ModelConfigRead},

	resolverv1.AdminService_PutUser_FullMethodName:               {rbac.UserWrite},
	resolverv1.AdminService_DeleteUser_FullMethodName:            {rbac.UserWrite},
	resolverv1.AdminService_GetUser_FullMethodName:               {rbac.UserWrite}, // there is no user:read
	resolverv1.AdminService_PutUserProviderKey_FullMethodName:    {rbac.UserAIProviderKeyWrite},
	resolverv1.AdminService_DeleteUserProviderKey_FullMethodName: {rbac.UserAIProviderKeyWrite},
	resolverv1.AdminService_ListUserProviderKeys_FullMethodName:  {rbac.UserAIProviderKeyRead},
	resolverv1.AdminService_PutChat_FullMethodName:               {rbac.ChatWrite},
	resolverv1.AdminService_GetChat_FullMethodName:               {rbac.ChatRead},

	resolverv1.AdminService_CreateToken_FullMethodName: {rbac.TokenWrite},
	resolverv1.AdminService_RevokeToken_FullMethodName: {rbac.TokenWrite},
	resolverv1.AdminService_GetToken_FullMethodName:    {rbac.TokenWrite},
	resolverv1.AdminService_ListTokens_FullMethodName:  {rbac.TokenWrite},

	resolverv1.AdminService_PutWorkloadIdentity_FullMethodName:    {rbac.TokenWrite},
	resolverv1.AdminService_DeleteWorkloadIdentity_FullMethodName: {rbac.TokenWrite},
	resolverv1.AdminService_ListWorkloadIdentities_FullMethodName: {rbac.TokenWrite},

	resolverv1.AdminService_ListAuditEvents_FullMethodName: {rbac.AuditRead},
}

// TokenLookup finds an active token by hash: the scope-checked store, which the authenticator
// calls as dbauthz.SystemAuthenticator, since there is no caller yet whose scopes could be checked.
type TokenLookup interface {
	ActiveToken(ctx context.Context, hash []byte) (db.Token, bool, error)
}

// Authenticator turns "authorization: Bearer <token>" into an rbac.Principal, and holds each
// token to its request rate. With UseIdentities it also takes workload identities: a JWT instead
// of the token, or the connection's client certificate when there is no authorization metadata
// (identity.go).
type Authenticator struct {
	tokens     TokenLookup
	identities Identities
	log        *slog.Logger
	limits     *CallerLimits
	obs        Observer
	refused    RefusalFunc
	principals [principalSlots]atomic.Pointer[tokenPrincipal]
}

// RefusalFunc hears of every call the authenticator refuses, with the context it had reached (it
// carries the caller once the token was known) and the request.
type RefusalFunc func(ctx context.Context, method string, req any, err error)

// ReportRefusals makes f hear of refused unary calls (see Resolver.RecordRefusal).
func (a *Authenticator) ReportRefusals(f RefusalFunc) { a.refused = f }

// RateLimit is the request rate each token may use: PerSecond with bursts of Burst. Zero
// PerSecond means no limit.
type RateLimit struct {
	PerSecond float64
	Burst     int
}

// NewAuthenticator returns an authenticator over tokens; obs may be nil.
func NewAuthenticator(tokens TokenLookup, log *slog.Logger, limit RateLimit, obs Observer) *Authenticator {
	if obs == nil {
		obs = nopObserver{}
	}
	return &Authenticator{tokens: tokens, log: log, limits: NewCallerLimits(limit, "requests"), obs: obs}
}

// allow takes one request from the caller's budget (its token's, or its workload identity's), or
// says how long until there is one.
func (a *Authenticator) allow(p *rbac.Principal) error {
	err := a.limits.Allow(p)
	if err != nil {
		a.obs.Limited()
	}
	return err
}

// Unary authenticates unary calls.
func (a *Authenticator) Unary(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
	ctx, err := a.authorize(ctx, info.FullMethod)
	if err != nil {
		if a.refused != nil {
			a.refused(ctx, info.FullMethod, req, err)
		}
		return nil, ToStatus(ctx, a.log, err)
	}
	return h(ctx, req)
}

// Stream authenticates streaming calls.
func (a *Authenticator) Stream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) error {
	ctx, err := a.authorize(ss.Context(), info.FullMethod)
	if err != nil {
		return ToStatus(ctx, a.log, err)
	}
	return h(srv, &contextStream{ServerStream: ss, ctx: ctx})
}

func (a *Authenticator) authorize(ctx context.Context, method string) (context.Context, error) {
	if public(method) {
		return ctx, nil
	}
	p, err := a.authenticate(ctx)
	if err != nil {
		return ctx, err
	}
	scopes, ok := MethodScopes[method]
	if !ok {
		return ctx, errs.New(errs.MissingScope, fmt.Sprintf("method %s has no scope rule and cannot be called", method), "method", method)
	}
	ctx = rbac.WithShared(ctx, p)
	if err := a.allow(p); err != nil {
		return ctx, err
	}
	if err := rbac.Require(ctx, scopes...); err != nil {
		return ctx, err
	}
	return ctx, nil
}

func (a *Authenticator) authenticate(ctx context.Context) (*rbac.Principal, error) {
	values := metadata.ValueFromIncomingContext(ctx, "authorization")
	if len(values) == 0 {
		if p, ok, err := a.fromPeer(ctx); ok {
			return &p, err
		}
		return nil, errs.New(errs.Unauthenticated, `missing "authorization: Bearer <token>" metadata`)
	}
	if len(values) > 1 {
		return nil, errs.New(errs.Unauthenticated, "more than one authorization value")
	}
	hash, err := apitoken.HashAuthorization(values[0])
	if err != nil {
		if p, ok, err := a.fromJWT(ctx, values[0]); ok {
			return &p, err
		}
		return nil, errs.New(errs.Unauthenticated, err.Error())
	}
	t, ok, err := a.tokens.ActiveToken(dbauthz.AsSystemRestricted(ctx, dbauthz.SystemAuthenticator), hash[:])
	if err != nil {
		return nil, fmt.Errorf("authenticate: %w", err)
	}
	if !ok {
		return nil, errs.New(errs.Unauthenticated, "the token is unknown, expired or revoked")
	}
	return a.principal(t), nil
}

// principalSlots is how many tokens' principals are kept (by token id, one per slot): a
// deployment's worker tokens are few, and a token whose slot another took is built again.
const principalSlots = 64

// tokenPrincipal is the caller a token row makes, and the row it was made from.
type tokenPrincipal struct {
	row db.Token
	p   *rbac.Principal
}

// principal is the caller t makes. It is built once per token and shared by the calls that token
// authenticates (rbac.WithShared), while the row read for the call — itself served from the token
// cache, which every change to the token invalidates — is the same field for field; a change to
// a token's scopes, name or expiry makes a new one at once.
func (a *Authenticator) principal(t db.Token) *rbac.Principal {
	slot := &a.principals[binary.LittleEndian.Uint64(t.ID[8:])%principalSlots]
	if e := slot.Load(); e != nil && sameTokenRow(&e.row, &t) {
		return e.p
	}
	scopes := make([]rbac.Scope, len(t.Scopes))
	for i, s := range t.Scopes {
		scopes[i] = rbac.Scope(s)
	}
	p := &rbac.Principal{TokenID: t.ID, Name: t.Name, Scopes: scopes, ExpiresAt: t.ExpiresAt}
	slot.Store(&tokenPrincipal{row: t, p: p})
	return p
}

// sameTokenRow reports whether a and b make the same principal.
func sameTokenRow(a, b *db.Token) bool {
	if a.ID != b.ID || a.Name != b.Name || !slices.Equal(a.Scopes, b.Scopes) || (a.ExpiresAt == nil) != (b.ExpiresAt == nil) {
		return false
	}
	return a.ExpiresAt == nil || a.ExpiresAt.Equal(*b.ExpiresAt)
}

// public reports whether fullMethod is of one of PublicServices. They are all gRPC's own
// ("grpc.", a test keeps it so), so resolverd's methods are told apart without a lookup.
func public(fullMethod string) bool {
	return strings.HasPrefix(fullMethod, "/grpc.") && PublicServices[serviceOf(fullMethod)]
}

// serviceOf returns "pkg.Service" of "/pkg.Service/Method".
func serviceOf(fullMethod string) string {
	s := strings.TrimPrefix(fullMethod, "/")
	if i := strings.LastIndex(s, "/"); i >= 0 {
		return s[:i]
	}
	return s
}
