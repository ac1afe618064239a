package service

import (
	"context"

	"github.com/google/uuid"

	"github.com/resolverd/resolverd/internal/db"
	"github.com/resolverd/resolverd/internal/resolve"
	resolverv1 "github.com/resolverd/resolverd/proto/resolver/v1"
)

func (s *Admin) CreateModelConfig(ctx context.Context, req *resolverv1.CreateModelConfigRequest) (*resolverv1.ModelConfig, error) {
	var v violations
	providerID := v.id("ai_provider_id", req.GetAiProviderId())
	v.text("model", req.GetModel(), true)
	v.text("display_name", req.GetDisplayName(), false)
	v.contextLimit("context_limit", req.GetContextLimit())
	v.compressionThreshold("compression_threshold", req.GetCompressionThreshold())
	options := v.options("options", req.GetOptions())
	if err := v.err(); err != nil {
		return nil, s.fail(ctx, err)
	}
	c, err := s.store.CreateModelConfig(ctx, resolve.ModelConfig{
		ID: newID(), ProviderID: providerID, Model: req.GetModel(), DisplayName: req.GetDisplayName(),
		Enabled: enabledOr(req.Enabled, true), IsDefault: req.GetIsDefault(), ContextLimit: req.GetContextLimit(),
		CompressionThreshold: req.GetCompressionThreshold(), Options: options,
	})
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	return configRowProto(c), nil
}

func (s *Admin) UpdateModelConfig(ctx context.Context, req *resolverv1.UpdateModelConfigRequest) (*resolverv1.ModelConfig, error) {
	var v violations
	id := v.id("id", req.GetId())
	providerID := uuid.Nil
	if req.AiProviderId != nil {
		providerID = v.id("ai_provider_id", req.GetAiProviderId())
	}
	if req.Model != nil {
		v.text("model", req.GetModel(), true)
	}
	if req.DisplayName != nil {
		v.text("display_name", req.GetDisplayName(), false)
	}
	if req.ContextLimit != nil {
		v.contextLimit("context_limit", req.GetContextLimit())
	}
	if req.CompressionThreshold != nil {
		v.compressionThreshold("compression_threshold", req.GetCompressionThreshold())
	}
	var options []byte
	if req.Options != nil {
		options = v.options("options", req.GetOptions())
	}
	if err := v.err(); err != nil {
		return nil, s.fail(ctx, err)
	}
	c, err := s.store.UpdateModelConfig(ctx, id, func(c *db.ModelConfig) error {
		if req.AiProviderId != nil {
			c.ProviderID = providerID
		}
		if req.Model != nil {
			c.Model = req.GetModel()
		}
		if req.DisplayName != nil {
			c.DisplayName = req.GetDisplayName()
		}
		if req.Enabled != nil {
			c.Enabled = req.GetEnabled()
		}
		if req.IsDefault != nil {
			c.IsDefault = req.GetIsDefault()
		}
		if req.ContextLimit != nil {
			c.ContextLimit = req.GetContextLimit()
		}
		if req.CompressionThreshold != nil {
			c.CompressionThreshold = req.GetCompressionThreshold()
		}
		if req.Options != nil {
			c.Options = options
		}
		return nil
	})
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	return configRowProto(c), nil
}

func (s *Admin) DeleteModelConfig(ctx context.Context, req *resolverv1.DeleteModelConfigRequest) (*resolverv1.DeleteModelConfigResponse, error) {
	if err := s.byID(ctx, req.GetId(), s.store.DeleteModelConfig); err != nil {
		return nil, err
	}
	return &resolverv1.DeleteModelConfigResponse{}, nil
}

func (s *Admin) GetModelConfig(ctx context.Context, req *resolverv1.GetModelConfigRequest) (*resolverv1.ModelConfig, error) {
	return getByID(ctx, s, req.GetId(), s.store.GetModelConfig, configRowProto)
}

func (s *Admin) ListModelConfigs(ctx context.Context, req *resolverv1.ListModelConfigsRequest) (*resolverv1.ListModelConfigsResponse, error) {
	var v violations
	size := v.pageSize("page_size", req.GetPageSize())
	pg := newPager[db.ModelConfigPos](&v, s.pages, "ListModelConfigs", "", size, req.GetPageToken())
	if err := v.err(); err != nil {
		return nil, s.fail(ctx, err)
	}
	configs, next, err := serve(ctx, pg, s.store.ListModelConfigs, db.ModelConfig.Pos, configRowProto)
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	return &resolverv1.ListModelConfigsResponse{ModelConfigs: configs, NextPageToken: next}, nil
}
