package resolve

import (
	"context"
	"errors"
	"fmt"
	"time"

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
	if hosts.Empty() {
		return nil // every host is allowed: nothing to judge, so no base_url to parse on every call
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

// KeyLoader reads the chat owner's key for a provider. It returns (nil, nil) when there is none. Its
// errors (a denied scope, a database failure) are returned as they are: they are never a reason to
// try another credential or config.
type KeyLoader func() (*Key, error)

// KeysLoader reads a provider's enabled central keys, oldest first (by created_at, then id), with
// their health; none is an empty list. Its errors are returned as they are, like KeyLoader's.
type KeysLoader func() ([]*Key, error)

// Choice is what the credential choice needs besides the provider and its keys.
type Choice struct {
	// AllowBYOK is the deployment's --allow-byok.
	AllowBYOK bool
	// Now is the moment of the resolution: a key cooling down until later is skipped. The rules
	// never read a clock of their own.
	Now time.Time
	// Turn gives the provider's next round-robin turn. It is called at most once, only for
	// PolicyRoundRobin and only when more than one key is available; nil counts as turn 0.
	Turn func() uint64
}

// ChooseCredential applies docs/CONTRACT.md §2.2 to provider p. userKey is called only when BYOK is
// allowed for p, centralKeys only when the user key does not settle the matter, so a caller needs
// the scope of a key table only when that table decides the answer. Only the key it answers with is
// opened (after every scope check the choice needed); a key that does not open ends the choice with
// its error, never a fallback to another key.
func ChooseCredential(ctx context.Context, p *Provider, c Choice, userKey KeyLoader, centralKeys KeysLoader) (Credential, error) {
	byok := BYOKAllowed(p, c.AllowBYOK)
	var invalid *Key // the owner's key, marked invalid
	if byok {
		k, err := userKey()
		if err != nil {
			return Credential{}, err
		}
		if k != nil && !k.Health.Suspended {
			return credential(ctx, SourceUser, k)
		}
		invalid = k
		if p.BYOKPolicy == BYOKRequired {
			if invalid != nil {
				return Credential{}, userKeyInvalid(p, invalid)
			}
			return Credential{}, errs.New(errs.UserKeyRequired,
				fmt.Sprintf("provider %s requires the chat owner's own API key and the owner has none", p.Name),
				"provider_id", p.ID.String())
		}
	}
	keys, err := centralKeys()
	if err != nil {
		return Credential{}, err
	}
	k, coolingUntil := ChooseCentralKey(keys, p.CentralKeyPolicy, c.Now, c.Turn)
	if k != nil {
		cred, err := credential(ctx, SourceCentral, k)
		if err == nil && invalid != nil {
			cred.UserKeySkipped = errs.UserKeyInvalid
		}
		return cred, err
	}
	if !coolingUntil.IsZero() {
		e := errs.New(errs.CredentialsCoolingDown,
			fmt.Sprintf("every enabled central key of provider %s is cooling down or suspended after workers' reports; the first cooldown ends at %s",
				p.Name, coolingUntil.UTC().Format(time.RFC3339)),
			"provider_id", p.ID.String())
		e.RetryAfter = coolingUntil.Sub(c.Now)
		return Credential{}, e
	}
	if p.Type == TypeBedrock {
		return Credential{Source: SourceAmbient, UserKeySkipped: skipped(invalid)}, nil
	}
	switch {
	case invalid != nil:
		return Credential{}, userKeyInvalid(p, invalid)
	case byok:
		return Credential{}, errs.New(errs.UserKeyRequired,
			fmt.Sprintf("provider %s has no available central key and the chat owner has no key of their own", p.Name),
			"provider_id", p.ID.String())
	}
	return Credential{}, errs.New(errs.NoCredentials,
		fmt.Sprintf("provider %s has no available central key and does not accept users' own keys", p.Name),
		"provider_id", p.ID.String())
}

// ChooseCentralKey applies policy to a provider's enabled central keys (oldest first) at now. It
// returns the key to answer with, or nil when none is available; then coolingUntil is the earliest
// end of a cooldown among them, zero when none is cooling down (every key is suspended, or there is
// none). turn is called only for PolicyRoundRobin with more than one key available.
func ChooseCentralKey(keys []*Key, policy CentralKeyPolicy, now time.Time, turn func() uint64) (chosen *Key, coolingUntil time.Time) {
	n := 0
	for _, k := range keys {
		if k.Health.Available(now) {
			n++
		} else if !k.Health.Suspended && (coolingUntil.IsZero() || k.Health.CoolingUntil.Before(coolingUntil)) {
			coolingUntil = k.Health.CoolingUntil
		}
	}
	if n == 0 {
		return nil, coolingUntil
	}
	pick := 0 // PolicyOldest: the first available, keys being oldest first
	if policy == PolicyRoundRobin && n > 1 && turn != nil {
		pick = int(turn() % uint64(n))
	}
	for _, k := range keys {
		if k.Health.Available(now) {
			if pick == 0 {
				return k, time.Time{}
			}
			pick--
		}
	}
	panic("unreachable: fewer available keys on the second pass")
}

func userKeyInvalid(p *Provider, k *Key) error {
	return errs.New(errs.UserKeyInvalid,
		fmt.Sprintf("provider %s requires the chat owner's own API key, and the owner's key was reported refused by the provider; the owner must put a new one", p.Name),
		"provider_id", p.ID.String(), "key_id", k.ID.String())
}

// skipped is why the owner's key was passed over: USER_KEY_INVALID when invalid is the owner's key.
func skipped(invalid *Key) errs.Reason {
	if invalid != nil {
		return errs.UserKeyInvalid
	}
	return ""
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
		errs.ProviderHostNotAllowed, errs.UserKeyRequired, errs.NoCredentials, errs.UserKeyInvalid, errs.CredentialsCoolingDown:
		return r, true
	}
	return "", false
}
