// Package resolve holds the decision rules of docs/CONTRACT.md §2: when a model config is usable, which
// credential a provider gives, and what each purpose does when the requested config cannot be used.
// It is plain Go over plain structs: no SQL, no gRPC. Start reading here.
package resolve

import (
	"github.com/google/uuid"

	"github.com/resolverd/resolverd/pkg/secret"
)

// BYOKPolicy is a provider's bring-your-own-key policy.
type BYOKPolicy string

const (
	BYOKDisabled BYOKPolicy = "disabled"
	BYOKOptional BYOKPolicy = "optional"
	BYOKRequired BYOKPolicy = "required"
)

// ProviderTypes are the provider types of docs/CONTRACT.md §1.
var ProviderTypes = []string{"anthropic", "azure", "bedrock", "google", "openai", "openai-compat", "openrouter", "vercel"}

// TypeBedrock is the one provider type that can fall back to the worker's ambient cloud credentials.
const TypeBedrock = "bedrock"

// Provider is an ai_providers row.
type Provider struct {
	ID          uuid.UUID
	Type        string
	Name        string
	DisplayName string
	BaseURL     string
	Enabled     bool
	Deleted     bool
	BYOKPolicy  BYOKPolicy
}

// ModelConfig is a chat_model_configs row with its provider attached: the provider is read together
// with the config, once, and passed on to the credential choice.
type ModelConfig struct {
	ID                   uuid.UUID
	ProviderID           uuid.UUID // uuid.Nil when the row has none
	Model                string
	DisplayName          string
	Enabled              bool
	IsDefault            bool
	Deleted              bool
	ContextLimit         int32
	CompressionThreshold int32
	Options              []byte // a JSON object

	// Provider is nil when no ai_providers row has ProviderID.
	Provider *Provider
}

// Chat is a chats row.
type Chat struct {
	ID      uuid.UUID
	OwnerID uuid.UUID
	// ModelConfigID is the chat's own model (chats.last_model_config_id), uuid.Nil when it has none.
	ModelConfigID uuid.UUID
}

// Key is a central or user key with its plaintext and its fingerprint (computed once, when the key
// is read).
type Key struct {
	ID          uuid.UUID
	Secret      secret.String
	Fingerprint string
}

// CredentialSource says where a credential came from.
type CredentialSource int

const (
	SourceCentral CredentialSource = iota + 1
	SourceUser
	SourceAmbient
)

func (s CredentialSource) String() string {
	switch s {
	case SourceCentral:
		return "central"
	case SourceUser:
		return "user"
	case SourceAmbient:
		return "ambient"
	}
	return "unknown"
}

// Credential is the one credential a resolution answers with. KeyID, Secret and Fingerprint are
// empty for ambient.
type Credential struct {
	Source      CredentialSource
	KeyID       uuid.UUID
	Secret      secret.String
	Fingerprint string
}

// Purpose says why a worker needs a model.
type Purpose int

const (
	PurposeUnspecified Purpose = iota
	PurposeChat
	PurposeSubagent
	PurposePersonalOverride
	PurposeTitle
	PurposeCompaction
)

func (p Purpose) String() string {
	switch p {
	case PurposeChat:
		return "chat"
	case PurposeSubagent:
		return "subagent"
	case PurposePersonalOverride:
		return "personal_override"
	case PurposeTitle:
		return "title"
	case PurposeCompaction:
		return "compaction"
	}
	return "unspecified"
}

// softOverride reports whether an unusable override falls back to the chat's own model.
func (p Purpose) softOverride() bool {
	return p == PurposeSubagent || p == PurposePersonalOverride || p == PurposeCompaction
}
