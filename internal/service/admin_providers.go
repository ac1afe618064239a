package service

import (
	"context"

	"github.com/resolverd/resolverd/internal/db"
	"github.com/resolverd/resolverd/internal/resolve"
	resolverv1 "github.com/resolverd/resolverd/proto/resolver/v1"
)

func (s *Admin) CreateProvider(ctx context.Context, req *resolverv1.CreateProviderRequest) (*resolverv1.Provider, error) {
	var v violations
	v.providerType("type", req.GetType())
	v.providerName("name", req.GetName())
	v.text("display_name", req.GetDisplayName(), false)
	v.baseURL("base_url", req.GetBaseUrl())
	v.providerHost("base_url", req.GetBaseUrl(), s.hosts)
	policy := v.byokPolicy("byok_policy", req.GetByokPolicy())
	keyPolicy := v.centralKeyPolicy("central_key_policy", req.GetCentralKeyPolicy())
	if err := v.err(); err != nil {
		return nil, s.fail(ctx, err)
	}
	if keyPolicy == "" {
		keyPolicy = resolve.PolicyOldest
	}
	p, err := s.store.CreateProvider(ctx, resolve.Provider{
		ID: newID(), Type: req.GetType(), Name: req.GetName(), DisplayName: req.GetDisplayName(),
		BaseURL: req.GetBaseUrl(), Enabled: enabledOr(req.Enabled, true), BYOKPolicy: policy, CentralKeyPolicy: keyPolicy,
	})
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	return providerRowProto(p), nil
}

func (s *Admin) UpdateProvider(ctx context.Context, req *resolverv1.UpdateProviderRequest) (*resolverv1.Provider, error) {
	var v violations
	id := v.id("id", req.GetId())
	if req.Name != nil {
		v.providerName("name", req.GetName())
	}
	if req.DisplayName != nil {
		v.text("display_name", req.GetDisplayName(), false)
	}
	if req.BaseUrl != nil {
		v.baseURL("base_url", req.GetBaseUrl())
		v.providerHost("base_url", req.GetBaseUrl(), s.hosts)
	}
	var policy resolve.BYOKPolicy
	if req.GetByokPolicy() != resolverv1.ByokPolicy_BYOK_POLICY_UNSPECIFIED {
		policy = v.byokPolicy("byok_policy", req.GetByokPolicy())
	}
	keyPolicy := v.centralKeyPolicy("central_key_policy", req.GetCentralKeyPolicy()) // "": unchanged
	if err := v.err(); err != nil {
		return nil, s.fail(ctx, err)
	}
	p, err := s.store.UpdateProvider(ctx, id, func(p *db.Provider) error {
		if req.Name != nil {
			p.Name = req.GetName()
		}
		if req.DisplayName != nil {
			p.DisplayName = req.GetDisplayName()
		}
		if req.BaseUrl != nil {
			p.BaseURL = req.GetBaseUrl()
		}
		if req.Enabled != nil {
			p.Enabled = req.GetEnabled()
		}
		if policy != "" {
			p.BYOKPolicy = policy
		}
		if keyPolicy != "" {
			p.CentralKeyPolicy = keyPolicy
		}
		return nil
	})
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	return providerRowProto(p), nil
}

func (s *Admin) DeleteProvider(ctx context.Context, req *resolverv1.DeleteProviderRequest) (*resolverv1.DeleteProviderResponse, error) {
	if err := s.byID(ctx, req.GetId(), s.store.DeleteProvider); err != nil {
		return nil, err
	}
	return &resolverv1.DeleteProviderResponse{}, nil
}

func (s *Admin) GetProvider(ctx context.Context, req *resolverv1.GetProviderRequest) (*resolverv1.Provider, error) {
	return getByID(ctx, s, req.GetId(), s.store.GetProvider, providerRowProto)
}

func (s *Admin) ListProviders(ctx context.Context, req *resolverv1.ListProvidersRequest) (*resolverv1.ListProvidersResponse, error) {
	var v violations
	size := v.pageSize("page_size", req.GetPageSize())
	pg := newPager[db.ProviderPos](&v, s.pages, "ListProviders", "", size, req.GetPageToken())
	if err := v.err(); err != nil {
		return nil, s.fail(ctx, err)
	}
	providers, next, err := serve(ctx, pg, s.store.ListProviders, db.Provider.Pos, providerRowProto)
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	return &resolverv1.ListProvidersResponse{Providers: providers, NextPageToken: next}, nil
}
