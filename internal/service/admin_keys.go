package service

import (
	"context"

	"github.com/resolverd/resolverd/internal/db"
	resolverv1 "github.com/resolverd/resolverd/proto/resolver/v1"
)

func (s *Admin) AddProviderKey(ctx context.Context, req *resolverv1.AddProviderKeyRequest) (*resolverv1.ProviderKey, error) {
	var v violations
	providerID := v.id("provider_id", req.GetProviderId())
	key := v.apiKey("api_key", req.GetApiKey())
	if err := v.err(); err != nil {
		return nil, s.fail(ctx, err)
	}
	k, err := s.store.AddProviderKey(ctx, newID(), providerID, key, enabledOr(req.Enabled, true))
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	return providerKeyProto(k, s.fpKey), nil
}

func (s *Admin) RotateProviderKey(ctx context.Context, req *resolverv1.RotateProviderKeyRequest) (*resolverv1.ProviderKey, error) {
	var v violations
	providerID := v.id("provider_id", req.GetProviderId())
	key := v.apiKey("api_key", req.GetApiKey())
	if err := v.err(); err != nil {
		return nil, s.fail(ctx, err)
	}
	k, err := s.store.RotateProviderKey(ctx, newID(), providerID, key)
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	return providerKeyProto(k, s.fpKey), nil
}

func (s *Admin) SetProviderKeyEnabled(ctx context.Context, req *resolverv1.SetProviderKeyEnabledRequest) (*resolverv1.ProviderKey, error) {
	var v violations
	id := v.id("id", req.GetId())
	if err := v.err(); err != nil {
		return nil, s.fail(ctx, err)
	}
	k, err := s.store.SetProviderKeyEnabled(ctx, id, enabledOr(req.Enabled, true))
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	return providerKeyProto(k, s.fpKey), nil
}

func (s *Admin) DeleteProviderKey(ctx context.Context, req *resolverv1.DeleteProviderKeyRequest) (*resolverv1.DeleteProviderKeyResponse, error) {
	if err := s.byID(ctx, req.GetId(), s.store.DeleteProviderKey); err != nil {
		return nil, err
	}
	return &resolverv1.DeleteProviderKeyResponse{}, nil
}

func (s *Admin) ListProviderKeys(ctx context.Context, req *resolverv1.ListProviderKeysRequest) (*resolverv1.ListProviderKeysResponse, error) {
	var v violations
	providerID := v.optionalID("provider_id", req.GetProviderId())
	size := v.pageSize("page_size", req.GetPageSize())
	pg := newPager[db.ProviderKeyPos](&v, s.pages, "ListProviderKeys", "provider_id="+idString(providerID), size, req.GetPageToken())
	if err := v.err(); err != nil {
		return nil, s.fail(ctx, err)
	}
	list := func(ctx context.Context, p db.Page[db.ProviderKeyPos]) ([]db.ProviderKey, error) {
		return s.store.ListProviderKeys(ctx, providerID, p)
	}
	conv := func(k db.ProviderKey) *resolverv1.ProviderKey { return providerKeyProto(k, s.fpKey) }
	keys, next, err := serve(ctx, pg, list, db.ProviderKey.Pos, conv)
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	return &resolverv1.ListProviderKeysResponse{Keys: keys, NextPageToken: next}, nil
}

func (s *Admin) PutUserProviderKey(ctx context.Context, req *resolverv1.PutUserProviderKeyRequest) (*resolverv1.UserProviderKey, error) {
	var v violations
	userID := v.id("user_id", req.GetUserId())
	providerID := v.id("ai_provider_id", req.GetAiProviderId())
	key := v.apiKey("api_key", req.GetApiKey())
	if err := v.err(); err != nil {
		return nil, s.fail(ctx, err)
	}
	k, err := s.store.PutUserProviderKey(ctx, newID(), userID, providerID, key)
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	return userKeyProto(k, s.fpKey), nil
}

func (s *Admin) DeleteUserProviderKey(ctx context.Context, req *resolverv1.DeleteUserProviderKeyRequest) (*resolverv1.DeleteUserProviderKeyResponse, error) {
	if err := s.byID(ctx, req.GetId(), s.store.DeleteUserProviderKey); err != nil {
		return nil, err
	}
	return &resolverv1.DeleteUserProviderKeyResponse{}, nil
}

// ListUserProviderKeys lists one user's own keys (fingerprints and health, never the secrets).
func (s *Admin) ListUserProviderKeys(ctx context.Context, req *resolverv1.ListUserProviderKeysRequest) (*resolverv1.ListUserProviderKeysResponse, error) {
	var v violations
	userID := v.id("user_id", req.GetUserId())
	size := v.pageSize("page_size", req.GetPageSize())
	pg := newPager[db.UserProviderKeyPos](&v, s.pages, "ListUserProviderKeys", "user_id="+idString(userID), size, req.GetPageToken())
	if err := v.err(); err != nil {
		return nil, s.fail(ctx, err)
	}
	list := func(ctx context.Context, p db.Page[db.UserProviderKeyPos]) ([]db.UserProviderKey, error) {
		return s.store.ListUserProviderKeys(ctx, userID, p)
	}
	conv := func(k db.UserProviderKey) *resolverv1.UserProviderKey { return userKeyProto(k, s.fpKey) }
	keys, next, err := serve(ctx, pg, list, db.UserProviderKey.Pos, conv)
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	return &resolverv1.ListUserProviderKeysResponse{Keys: keys, NextPageToken: next}, nil
}
