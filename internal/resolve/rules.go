package resolve

import (
	"context"
	"errors"
	"fmt"

	"github.com/resolverd/resolverd/internal/egress"
	"github.com/resolverd/resolverd/internal/errs"
)

// Unusable returns why a model config cannot be used (docs/CONTRACT.md §2.1), checked in the order the contract
// gives, or nil when it can. A nil config is one that does not exist. hosts is the deployment's
// --allowed-provider-hosts (nil allows every host, docs/CONTRACT.md §7.5).
func Unusable(cfg *ModelConfig, hosts *egress.AllowList) *errs.Error {
	switch {
	case cfg == nil || cfg.Deleted:
		e := errs.New(errs.ModelConfigNotFound, "the model config does not exist")
		if cfg != nil {
			e = e.With("model_config_id", cfg.ID.String())
		}
		return e
	case !cfg.Enabled:
		return errs.New(errs.ModelConfigDisabled, fmt.Sprintf("model config %s is disabled", cfg.ID),
			"model_config_id", cfg.ID.String())
	case cfg.Provider == nil || cfg.Provider.Deleted:
		return errs.New(errs.ProviderNotFound, fmt.Sprintf("the provider of model config %s does not exist", cfg.ID),
			"model_config_id", cfg.ID.String(), "provider_id", cfg.ProviderID.String())
	case !cfg.Provider.Enabled:
		return errs.New(errs.ProviderDisabled, fmt.Sprintf("provider %s of model config %s is disabled", cfg.Provider.Name, cfg.ID),
			"model_config_id", cfg.ID.String(), "provider_id", cfg.ProviderID.String())
	}
	if host, ok := hosts.Check(cfg.Provider.BaseURL); !ok {
		return errs.New(errs.ProviderHostNotAllowed,
			fmt.Sprintf("the base_url host %q of provider %s (model config %s) is not among the allowed provider hosts", host, cfg.Provider.Name, cfg.ID),
			"model_config_id", cfg.ID.String(), "provider_id", cfg.ProviderID.String(), "host", host)
	}
	return nil
}

// BYOKAllowed reports whether users may bring their own key for p: the deployment allows it and the
// provider's policy is not disabled.
func BYOKAllowed(p *Provider, allowBYOK bool) bool {
	return allowBYOK && (p.BYOKPolicy == BYOKOptional || p.BYOKPolicy == BYOKRequired)
}

// KeyLoader reads one key: the chat owner's key for a provider, or the provider's oldest enabled
// central key. It returns (nil, nil) when there is none. Its errors (a denied scope, a database
// failure) are returned as they are: they are never a reason to try another credential or config.
type KeyLoader func() (*Key, error)

// ChooseCredential applies docs/CONTRACT.md §2.2 to provider p. userKey is called only when BYOK is allowed for p,
// centralKey only when the user key does not settle the matter, so a caller needs the scope of a key
// table only when that table decides the answer. Only the key it answers with is opened (after every
// scope check the choice needed); a key that does not open ends the choice with its error, never a
// fallback to another key.
func ChooseCredential(ctx context.Context, p *Provider, allowBYOK bool, userKey, centralKey KeyLoader) (Credential, error) {
	byok := BYOKAllowed(p, allowBYOK)
	if byok {
		k, err := userKey()
		if err != nil {
			return Credential{}, err
		}
		if k != nil {
			return credential(ctx, SourceUser, k)
		}
		if p.BYOKPolicy == BYOKRequired {
			return Credential{}, errs.New(errs.UserKeyRequired,
				fmt.Sprintf("provider %s requires the chat owner's own API key and the owner has none", p.Name),
				"provider_id", p.ID.String())
		}
	}
	k, err := centralKey()
	if err != nil {
		return Credential{}, err
	}
	if k != nil {
		return credential(ctx, SourceCentral, k)
	}
	if p.Type == TypeBedrock {
		return Credential{Source: SourceAmbient}, nil
	}
	if byok {
		return Credential{}, errs.New(errs.UserKeyRequired,
			fmt.Sprintf("provider %s has no enabled central key and the chat owner has no key of their own", p.Name),
			"provider_id", p.ID.String())
	}
	return Credential{}, errs.New(errs.NoCredentials,
		fmt.Sprintf("provider %s has no enabled central key and does not accept users' own keys", p.Name),
		"provider_id", p.ID.String())
}

// credential opens the chosen key k.
func credential(ctx context.Context, source CredentialSource, k *Key) (Credential, error) {
	s, fp, err := k.Open(ctx)
	if err != nil {
		return Credential{}, hardError{err}
	}
	return Credential{Source: source, KeyID: k.ID, Secret: s, Fingerprint: fp}, nil
}

// fallbackReason returns the reason an override may be replaced by another config: the config is
// unusable or it has no usable credential. Everything else (a denied scope, a missing chat, a
// database failure, a cancelled call) is not a reason to fall back and yields ok=false.
func fallbackReason(err error) (errs.Reason, bool) {
	if h := (hardError{}); errors.As(err, &h) {
		return "", false
	}
	switch r := errs.ReasonOf(err); r {
	case errs.ModelConfigNotFound, errs.ModelConfigDisabled, errs.ProviderNotFound, errs.ProviderDisabled,
		errs.ProviderHostNotAllowed, errs.UserKeyRequired, errs.NoCredentials:
		return r, true
	}
	return "", false
}
