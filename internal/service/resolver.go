package service

import (
	"context"
	"log/slog"

	"github.com/resolverd/resolverd/internal/dbauthz"
	"github.com/resolverd/resolverd/internal/resolve"
	"github.com/resolverd/resolverd/internal/secret"
	resolverv1 "github.com/resolverd/resolverd/proto/resolver/v1"
)

// Resolver serves resolver.v1.ResolverService.
type Resolver struct {
	resolverv1.UnimplementedResolverServiceServer
	store *dbauthz.Store
	opts  resolve.Options
	fpKey []byte
	log   *slog.Logger
}

// NewResolver returns the ResolverService handler. fpKey keys the credential fingerprints.
func NewResolver(store *dbauthz.Store, opts resolve.Options, fpKey []byte, log *slog.Logger) *Resolver {
	return &Resolver{store: store, opts: opts, fpKey: fpKey, log: log}
}

// ResolveModel validates the request, applies the decision rules over the scope-checked store and
// answers with one config, its provider and one credential.
func (s *Resolver) ResolveModel(ctx context.Context, req *resolverv1.ResolveModelRequest) (*resolverv1.ResolveModelResponse, error) {
	var v violations
	r := resolve.Request{
		ChatID:        v.id("chat_id", req.GetChatId()),
		ModelConfigID: v.optionalID("model_config_id", req.GetModelConfigId()),
		Purpose:       purposeOf(&v, req.GetPurpose()),
	}
	if err := v.err(); err != nil {
		return nil, ToStatus(ctx, s.log, err)
	}
	res, err := resolve.Resolve(ctx, s.store, s.opts, r)
	if err != nil {
		return nil, ToStatus(ctx, s.log, err)
	}
	return &resolverv1.ResolveModelResponse{
		ModelConfig: configProto(res.Config, timeZero, timeZero),
		Provider:    providerProto(res.Provider, timeZero, timeZero),
		Credential:  credentialProto(res.Credential, s.fpKey),
		Decision: &resolverv1.Decision{
			RequestedModelConfigId: idString(res.RequestedConfigID),
			Fallback:               res.Fallback,
			FallbackReason:         string(res.FallbackReason),
		},
	}, nil
}

func credentialProto(c resolve.Credential, fpKey []byte) *resolverv1.Credential {
	out := &resolverv1.Credential{}
	switch c.Source {
	case resolve.SourceCentral:
		out.Source = resolverv1.CredentialSource_CREDENTIAL_SOURCE_CENTRAL
	case resolve.SourceUser:
		out.Source = resolverv1.CredentialSource_CREDENTIAL_SOURCE_USER
	case resolve.SourceAmbient:
		out.Source = resolverv1.CredentialSource_CREDENTIAL_SOURCE_AMBIENT
		return out
	}
	out.KeyId = c.KeyID.String()
	// The one response field that carries a secret.
	out.ApiKey = c.Secret.Reveal()
	out.Fingerprint = secret.Fingerprint(fpKey, c.Secret)
	return out
}
