package service

import (
	"time"

	"github.com/google/uuid"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/resolverd/resolverd/internal/db"
	"github.com/resolverd/resolverd/internal/resolve"
	"github.com/resolverd/resolverd/pkg/secret"
	resolverv1 "github.com/resolverd/resolverd/proto/resolver/v1"
)

func byokPolicyProto(p resolve.BYOKPolicy) resolverv1.ByokPolicy {
	switch p {
	case resolve.BYOKOptional:
		return resolverv1.ByokPolicy_BYOK_POLICY_OPTIONAL
	case resolve.BYOKRequired:
		return resolverv1.ByokPolicy_BYOK_POLICY_REQUIRED
	}
	return resolverv1.ByokPolicy_BYOK_POLICY_DISABLED
}

func providerProto(p *resolve.Provider, created, updated time.Time) *resolverv1.Provider {
	return &resolverv1.Provider{
		Id: p.ID.String(), Type: p.Type, Name: p.Name, DisplayName: p.DisplayName, BaseUrl: p.BaseURL,
		Enabled: p.Enabled, ByokPolicy: byokPolicyProto(p.BYOKPolicy), CentralKeyPolicy: centralKeyPolicyProto(p.CentralKeyPolicy),
		CreatedAt: timestamp(created), UpdatedAt: timestamp(updated),
	}
}

func providerRowProto(p db.Provider) *resolverv1.Provider {
	return providerProto(&p.Provider, p.CreatedAt, p.UpdatedAt)
}

func configProto(c *resolve.ModelConfig, created, updated time.Time) *resolverv1.ModelConfig {
	out := &resolverv1.ModelConfig{
		Id: c.ID.String(), Model: c.Model, DisplayName: c.DisplayName, Enabled: c.Enabled,
		IsDefault: c.IsDefault, ContextLimit: c.ContextLimit, CompressionThreshold: c.CompressionThreshold,
		Options: optionsProto(c.Options), CreatedAt: timestamp(created), UpdatedAt: timestamp(updated),
	}
	if c.ProviderID != uuid.Nil {
		out.AiProviderId = c.ProviderID.String()
	}
	return out
}

func configRowProto(c db.ModelConfig) *resolverv1.ModelConfig {
	return configProto(&c.ModelConfig, c.CreatedAt, c.UpdatedAt)
}

// optionsProto turns the stored JSON object into a Struct; the column's CHECK keeps it an object.
func optionsProto(b []byte) *structpb.Struct {
	s := &structpb.Struct{}
	if len(b) == 0 {
		return s
	}
	if err := protojson.Unmarshal(b, s); err != nil {
		return &structpb.Struct{}
	}
	return s
}

func providerKeyProto(k db.ProviderKey, fpKey []byte) *resolverv1.ProviderKey {
	return &resolverv1.ProviderKey{
		Id: k.ID.String(), ProviderId: k.ProviderID.String(), Enabled: k.Enabled,
		Fingerprint: secret.Fingerprint(fpKey, k.Secret),
		CreatedAt:   timestamp(k.CreatedAt), UpdatedAt: timestamp(k.UpdatedAt),
		Health: healthProto(k.Health, time.Now()),
	}
}

func userProto(u db.User) *resolverv1.User {
	return &resolverv1.User{Id: u.ID.String(), Username: u.Username, CreatedAt: timestamp(u.CreatedAt), UpdatedAt: timestamp(u.UpdatedAt)}
}

func userKeyProto(k db.UserProviderKey, fpKey []byte) *resolverv1.UserProviderKey {
	return &resolverv1.UserProviderKey{
		Id: k.ID.String(), UserId: k.UserID.String(), AiProviderId: k.ProviderID.String(),
		Fingerprint: secret.Fingerprint(fpKey, k.Secret),
		CreatedAt:   timestamp(k.CreatedAt), UpdatedAt: timestamp(k.UpdatedAt),
		Health: healthProto(k.Health, time.Now()),
	}
}

func chatProto(c db.Chat) *resolverv1.Chat {
	out := &resolverv1.Chat{Id: c.ID.String(), OwnerId: c.OwnerID.String(), CreatedAt: timestamp(c.CreatedAt), UpdatedAt: timestamp(c.UpdatedAt)}
	if c.ModelConfigID != uuid.Nil {
		out.ModelConfigId = c.ModelConfigID.String()
	}
	return out
}

func tokenProto(t db.Token) *resolverv1.Token {
	return &resolverv1.Token{
		Id: t.ID.String(), Name: t.Name, Scopes: t.Scopes,
		ExpiresAt: optionalTimestamp(t.ExpiresAt), RevokedAt: optionalTimestamp(t.RevokedAt), CreatedAt: timestamp(t.CreatedAt),
	}
}

func timestamp(t time.Time) *timestamppb.Timestamp {
	if t.IsZero() {
		return nil
	}
	return timestamppb.New(t)
}

func optionalTimestamp(t *time.Time) *timestamppb.Timestamp {
	if t == nil {
		return nil
	}
	return timestamppb.New(*t)
}

// timeZero leaves a timestamp unset: the resolution path does not read row timestamps.
var timeZero time.Time

func idString(id uuid.UUID) string {
	if id == uuid.Nil {
		return ""
	}
	return id.String()
}
