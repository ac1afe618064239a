package service

import (
	"context"

	resolverv1 "github.com/resolverd/resolverd/proto/resolver/v1"
)

func (s *Admin) PutUser(ctx context.Context, req *resolverv1.PutUserRequest) (*resolverv1.User, error) {
	var v violations
	id := v.id("id", req.GetId())
	v.text("username", req.GetUsername(), true)
	if err := v.err(); err != nil {
		return nil, s.fail(ctx, err)
	}
	u, err := s.store.PutUser(ctx, id, req.GetUsername())
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	return userProto(u), nil
}

// GetUser needs user:write (there is no user:read scope).
func (s *Admin) GetUser(ctx context.Context, req *resolverv1.GetUserRequest) (*resolverv1.User, error) {
	return getByID(ctx, s, req.GetId(), s.store.GetUser, userProto)
}

func (s *Admin) DeleteUser(ctx context.Context, req *resolverv1.DeleteUserRequest) (*resolverv1.DeleteUserResponse, error) {
	if err := s.byID(ctx, req.GetId(), s.store.DeleteUser); err != nil {
		return nil, err
	}
	return &resolverv1.DeleteUserResponse{}, nil
}

func (s *Admin) PutChat(ctx context.Context, req *resolverv1.PutChatRequest) (*resolverv1.Chat, error) {
	var v violations
	id := v.id("id", req.GetId())
	owner := v.id("owner_id", req.GetOwnerId())
	model := v.optionalID("model_config_id", req.GetModelConfigId())
	if err := v.err(); err != nil {
		return nil, s.fail(ctx, err)
	}
	c, err := s.store.PutChat(ctx, id, owner, model)
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	return chatProto(c), nil
}

func (s *Admin) GetChat(ctx context.Context, req *resolverv1.GetChatRequest) (*resolverv1.Chat, error) {
	return getByID(ctx, s, req.GetId(), s.store.GetChat, chatProto)
}
