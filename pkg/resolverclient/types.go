package resolverclient

import (
	"fmt"
	"strings"

	"github.com/resolverd/resolverd/pkg/secret"
	resolverv1 "github.com/resolverd/resolverd/proto/resolver/v1"
)

// Purpose says why the worker needs a model; it decides what happens when the requested config is
// unusable (docs/CONTRACT.md §2.3). The zero value is invalid and refused by the server.
type Purpose int

const (
	// PurposeChat is the chat's model; an unusable one falls back to the default config.
	PurposeChat Purpose = iota + 1
	// PurposeSubagent is a soft override: it falls back to the chat's own model.
	PurposeSubagent
	// PurposePersonalOverride is a soft override: it falls back to the chat's own model.
	PurposePersonalOverride
	// PurposeTitle is a hard override: it fails instead of falling back.
	PurposeTitle
	// PurposeCompaction is a soft override: it falls back to the chat's own model.
	PurposeCompaction
)

var purposeNames = map[Purpose]string{
	PurposeChat: "chat", PurposeSubagent: "subagent", PurposePersonalOverride: "personal_override",
	PurposeTitle: "title", PurposeCompaction: "compaction",
}

var purposeProto = map[Purpose]resolverv1.Purpose{
	PurposeChat:             resolverv1.Purpose_PURPOSE_CHAT,
	PurposeSubagent:         resolverv1.Purpose_PURPOSE_SUBAGENT,
	PurposePersonalOverride: resolverv1.Purpose_PURPOSE_PERSONAL_OVERRIDE,
	PurposeTitle:            resolverv1.Purpose_PURPOSE_TITLE,
	PurposeCompaction:       resolverv1.Purpose_PURPOSE_COMPACTION,
}

// String is the purpose's short name: chat, subagent, personal_override, title or compaction.
func (p Purpose) String() string {
	if n, ok := purposeNames[p]; ok {
		return n
	}
	return fmt.Sprintf("Purpose(%d)", int(p))
}

// proto maps the purpose to the wire enum; an unknown purpose becomes PURPOSE_UNSPECIFIED, which
// the server refuses with INVALID_ARGUMENT naming the field.
func (p Purpose) proto() resolverv1.Purpose { return purposeProto[p] }

// ParsePurpose reads a purpose name, case-insensitively: chat, subagent, personal_override (or
// personal-override), title, compaction, or the wire names PURPOSE_CHAT and so on.
func ParsePurpose(s string) (Purpose, error) {
	n := strings.ToLower(strings.TrimSpace(s))
	n = strings.TrimPrefix(n, "purpose_")
	n = strings.ReplaceAll(n, "-", "_")
	for p, name := range purposeNames {
		if n == name {
			return p, nil
		}
	}
	return 0, fmt.Errorf("unknown purpose %q: use chat, subagent, personal_override, title or compaction", s)
}

// CredentialSource says where the credential comes from.
type CredentialSource int

const (
	// CredentialSourceUnspecified is never returned by a conforming server.
	CredentialSourceUnspecified CredentialSource = iota
	// CredentialSourceCentral is the organisation's key for the provider.
	CredentialSourceCentral
	// CredentialSourceUser is the chat owner's own key (BYOK).
	CredentialSourceUser
	// CredentialSourceAmbient means the worker's own cloud credentials (bedrock); no key is given.
	CredentialSourceAmbient
)

// String is central, user, ambient or unspecified.
func (s CredentialSource) String() string {
	switch s {
	case CredentialSourceCentral:
		return "central"
	case CredentialSourceUser:
		return "user"
	case CredentialSourceAmbient:
		return "ambient"
	}
	return "unspecified"
}

// MarshalText writes the name, so that JSON and slog show "central" rather than 1.
func (s CredentialSource) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// BYOKPolicy is a provider's byok_policy.
type BYOKPolicy int

const (
	// BYOKDisabled: the owner's own keys are never used.
	BYOKDisabled BYOKPolicy = iota
	// BYOKOptional: the owner's key when they have one, else the central key.
	BYOKOptional
	// BYOKRequired: the owner's key, or USER_KEY_REQUIRED.
	BYOKRequired
)

// String is disabled, optional or required (the column's values).
func (p BYOKPolicy) String() string {
	switch p {
	case BYOKOptional:
		return "optional"
	case BYOKRequired:
		return "required"
	}
	return "disabled"
}

// MarshalText writes the name, so that JSON and slog show "optional" rather than 1.
func (p BYOKPolicy) MarshalText() ([]byte, error) { return []byte(p.String()), nil }

// Resolution is ResolveModel's answer: the model to call, its provider and one credential, and how
// the server decided. Printing it in any way (%v, %+v, %#v, JSON, slog) shows the API key as
// [REDACTED]; only Credential.APIKey.Reveal() gives the key.
type Resolution struct {
	ModelConfig ModelConfig
	Provider    Provider
	Credential  Credential
	Decision    Decision
}

// ModelConfig is the model config the worker should use.
type ModelConfig struct {
	ID          string
	ProviderID  string
	Model       string // the provider's model id, e.g. gpt-4o
	DisplayName string
	Enabled     bool
	IsDefault   bool
	// ContextLimit is the model's context window in tokens.
	ContextLimit int
	// CompressionThreshold is the percentage (0-100) of ContextLimit at which to compact.
	CompressionThreshold int
	// Options are the config's free-form options (JSON object), nil when there are none.
	Options map[string]any
}

// Provider is the AI provider to call.
type Provider struct {
	ID   string
	Type string // anthropic, azure, bedrock, google, openai, openai-compat, openrouter, vercel
	Name string
	// DisplayName is empty when the provider has none; show Name then.
	DisplayName string
	// BaseURL is empty for the SDK's default endpoint.
	BaseURL    string
	Enabled    bool
	BYOKPolicy BYOKPolicy
}

// Credential is the one credential to call the provider with.
type Credential struct {
	Source CredentialSource
	// KeyID is the key row's id; empty for ambient credentials.
	KeyID string
	// APIKey is the secret; empty for ambient credentials. It prints as [REDACTED]: call
	// APIKey.Reveal() where it is handed to the provider's SDK, and nowhere else.
	APIKey secret.String
	// Fingerprint is the keyed HMAC-SHA256 of the key (16 hex characters), the value resolverd's
	// audit trail records: safe to log. Empty for ambient credentials.
	Fingerprint string
}

// Decision explains the answer.
type Decision struct {
	// RequestedModelConfigID is the config asked for, or the chat's own when none was given.
	RequestedModelConfigID string
	// Fallback is true when the answer is not the requested config.
	Fallback bool
	// FallbackReason is why the requested config was unusable (e.g. MODEL_CONFIG_DISABLED).
	FallbackReason string
	// UserKeySkippedReason is why the chat owner's own key was passed over for another credential
	// (USER_KEY_INVALID: it was reported refused and the owner has not put a new one); "" otherwise.
	UserKeySkippedReason string
}

func resolutionOf(r *resolverv1.ResolveModelResponse) *Resolution {
	mc, p, c, d := r.GetModelConfig(), r.GetProvider(), r.GetCredential(), r.GetDecision()
	res := &Resolution{
		ModelConfig: ModelConfig{
			ID: mc.GetId(), ProviderID: mc.GetAiProviderId(), Model: mc.GetModel(), DisplayName: mc.GetDisplayName(),
			Enabled: mc.GetEnabled(), IsDefault: mc.GetIsDefault(),
			ContextLimit: int(mc.GetContextLimit()), CompressionThreshold: int(mc.GetCompressionThreshold()),
		},
		Provider: Provider{
			ID: p.GetId(), Type: p.GetType(), Name: p.GetName(), DisplayName: p.GetDisplayName(),
			BaseURL: p.GetBaseUrl(), Enabled: p.GetEnabled(),
		},
		Credential: Credential{KeyID: c.GetKeyId(), Fingerprint: c.GetFingerprint()},
		Decision: Decision{
			RequestedModelConfigID: d.GetRequestedModelConfigId(), Fallback: d.GetFallback(), FallbackReason: d.GetFallbackReason(),
			UserKeySkippedReason: d.GetUserKeySkippedReason(),
		},
	}
	if mc.GetOptions() != nil {
		res.ModelConfig.Options = mc.GetOptions().AsMap()
	}
	switch p.GetByokPolicy() {
	case resolverv1.ByokPolicy_BYOK_POLICY_OPTIONAL:
		res.Provider.BYOKPolicy = BYOKOptional
	case resolverv1.ByokPolicy_BYOK_POLICY_REQUIRED:
		res.Provider.BYOKPolicy = BYOKRequired
	}
	switch c.GetSource() {
	case resolverv1.CredentialSource_CREDENTIAL_SOURCE_CENTRAL:
		res.Credential.Source = CredentialSourceCentral
	case resolverv1.CredentialSource_CREDENTIAL_SOURCE_USER:
		res.Credential.Source = CredentialSourceUser
	case resolverv1.CredentialSource_CREDENTIAL_SOURCE_AMBIENT:
		res.Credential.Source = CredentialSourceAmbient
	}
	if k := c.GetApiKey(); k != "" {
		res.Credential.APIKey = secret.New(k)
	}
	return res
}
