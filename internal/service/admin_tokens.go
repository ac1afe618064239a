package service

import (
	"context"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/resolverd/resolverd/internal/apitoken"
	"github.com/resolverd/resolverd/internal/db"
	"github.com/resolverd/resolverd/internal/rbac"
	resolverv1 "github.com/resolverd/resolverd/proto/resolver/v1"
)

// MaxTokenTTL bounds ttl_seconds (ten years); 0 means no expiry.
const MaxTokenTTL = 10 * 365 * 24 * time.Hour

// CreateToken mints a token with scopes the caller itself holds; the token is shown once.
func (s *Admin) CreateToken(ctx context.Context, req *resolverv1.CreateTokenRequest) (*resolverv1.CreateTokenResponse, error) {
	var v violations
	v.text("name", req.GetName(), true)
	scopes, err := rbac.ParseScopes(req.GetScopes())
	switch {
	case err != nil:
		v.add("scopes", "%v", err)
	case len(scopes) == 0:
		v.add("scopes", "at least one scope is required")
	}
	ttl := time.Duration(req.GetTtlSeconds()) * time.Second
	if req.GetTtlSeconds() < 0 || req.GetTtlSeconds() > int64(MaxTokenTTL/time.Second) {
		v.add("ttl_seconds", "must be between 0 (no expiry) and %d (ten years)", int64(MaxTokenTTL/time.Second))
	}
	if err := v.err(); err != nil {
		return nil, s.fail(ctx, err)
	}
	var expires *time.Time
	if ttl > 0 {
		t := time.Now().Add(ttl).UTC().Truncate(time.Microsecond)
		expires = &t
	}
	tok, hash := apitoken.New()
	t, err := s.store.CreateToken(ctx, newID(), req.GetName(), scopes, hash, expires)
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	out := &resolverv1.CreateTokenResponse{Token: tok.Reveal(), Id: t.ID.String(), Name: t.Name, Scopes: t.Scopes}
	if t.ExpiresAt != nil {
		out.ExpiresAt = timestamppb.New(*t.ExpiresAt)
	}
	return out, nil
}

func (s *Admin) RevokeToken(ctx context.Context, req *resolverv1.RevokeTokenRequest) (*resolverv1.RevokeTokenResponse, error) {
	if err := s.byID(ctx, req.GetId(), s.store.RevokeToken); err != nil {
		return nil, err
	}
	return &resolverv1.RevokeTokenResponse{}, nil
}

// GetToken returns a token's name, scopes and dates; the token itself is never stored.
func (s *Admin) GetToken(ctx context.Context, req *resolverv1.GetTokenRequest) (*resolverv1.Token, error) {
	return getByID(ctx, s, req.GetId(), s.store.GetToken, tokenProto)
}

func (s *Admin) ListTokens(ctx context.Context, req *resolverv1.ListTokensRequest) (*resolverv1.ListTokensResponse, error) {
	var v violations
	size := v.pageSize("page_size", req.GetPageSize())
	pg := newPager[db.TokenPos](&v, s.pages, "ListTokens", "", size, req.GetPageToken())
	if err := v.err(); err != nil {
		return nil, s.fail(ctx, err)
	}
	tokens, next, err := serve(ctx, pg, s.store.ListTokens, db.Token.Pos, tokenProto)
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	return &resolverv1.ListTokensResponse{Tokens: tokens, NextPageToken: next}, nil
}
