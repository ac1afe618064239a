package resolve

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/resolverd/resolverd/internal/egress"
	"github.com/resolverd/resolverd/internal/errs"
)

// Snapshot is what a resolution reads before deciding: the chat and every model config it may need
// (the requested one, the chat's own and the default), each with its provider. Resolve only reads
// it: the cache serves one snapshot to many calls (internal/cachedstore).
type Snapshot struct {
	Chat Chat
	// Configs holds the configs that exist, by id; a config missing from it does not exist.
	Configs map[uuid.UUID]*ModelConfig
	// DefaultID is the live config with is_default set, uuid.Nil when there is none.
	DefaultID uuid.UUID
}

// Source reads what a resolution needs. The implementation checks the caller's scopes for every
// table it reads; its errors end the resolution as they are.
type Source interface {
	// Snapshot reads the chat and the configs named in Snapshot. A missing chat is CHAT_NOT_FOUND.
	Snapshot(ctx context.Context, chatID, requestedConfigID uuid.UUID) (*Snapshot, error)
	// UserKey returns the user's key for the provider id (with its health), or nil.
	UserKey(ctx context.Context, userID, providerID uuid.UUID) (*Key, error)
	// CentralKeys returns the provider's enabled central keys, oldest first (by created_at, then
	// id), each with its health; none is an empty list.
	CentralKeys(ctx context.Context, providerID uuid.UUID) ([]*Key, error)
}

// Request is a ResolveModel call. ModelConfigID is uuid.Nil for "the chat's own model".
type Request struct {
	ChatID        uuid.UUID
	ModelConfigID uuid.UUID
	Purpose       Purpose
}

// Result is the answer: one config, its provider, one credential, and how it was reached.
type Result struct {
	Config     *ModelConfig
	Provider   *Provider
	Credential Credential
	// RequestedConfigID is the config asked for, or the chat's own when the request named none.
	RequestedConfigID uuid.UUID
	Fallback          bool
	// FallbackReason is why the requested config was unusable, set when Fallback is.
	FallbackReason errs.Reason
}

// Options are the deployment's switches.
type Options struct {
	// AllowBYOK is the global --allow-byok switch.
	AllowBYOK bool
	// AllowedHosts is --allowed-provider-hosts: a provider whose base_url host is outside it is
	// unusable (docs/CONTRACT.md §7.5). nil allows every host.
	AllowedHosts *egress.AllowList
	// Now is the clock a resolution reads once, for the keys' cooldowns (nil: time.Now).
	Now func() time.Time
	// Turn gives a provider's next round-robin turn (nil: always 0, the first available key).
	// Turns.Next is the replica's own.
	Turn func(providerID uuid.UUID) uint64
}

// Resolve answers a request by docs/CONTRACT.md §2.3.
func Resolve(ctx context.Context, src Source, opts Options, req Request) (*Result, error) {
	if req.Purpose < PurposeChat || req.Purpose > PurposeCompaction {
		return nil, errs.Invalid(errs.FieldViolation{Field: "purpose", Description: "must be one of PURPOSE_CHAT, PURPOSE_SUBAGENT, PURPOSE_PERSONAL_OVERRIDE, PURPOSE_TITLE, PURPOSE_COMPACTION"})
	}
	snap, err := src.Snapshot(ctx, req.ChatID, req.ModelConfigID)
	if err != nil {
		return nil, err
	}
	now := time.Now
	if opts.Now != nil {
		now = opts.Now
	}
	r := &resolution{ctx: ctx, src: src, opts: opts, snap: snap, now: now()}

	requested, purpose := req.ModelConfigID, req.Purpose
	if requested == uuid.Nil {
		requested, purpose = snap.Chat.ModelConfigID, PurposeChat
	}
	switch {
	case purpose == PurposeChat:
		return r.chat(requested)
	case purpose.softOverride():
		res, err := r.config(requested)
		reason, soft := fallbackReason(err)
		if !soft {
			return res, err
		}
		res, err = r.chat(snap.Chat.ModelConfigID)
		if err != nil {
			return nil, err
		}
		res.RequestedConfigID, res.Fallback, res.FallbackReason = requested, true, reason
		return res, nil
	default: // PurposeTitle: a hard override.
		return r.config(requested)
	}
}

// resolution is one Resolve call's state. Keys are remembered per provider so that a fallback to a
// config of the same provider does not read them again.
type resolution struct {
	ctx          context.Context
	src          Source
	opts         Options
	snap         *Snapshot
	now          time.Time
	userKeys     []keyMemo[*Key] // a resolution touches at most three providers
	centralPools []keyMemo[[]*Key]
}

type keyMemo[K any] struct {
	provider uuid.UUID
	key      K
}

func recall[K any](m []keyMemo[K], provider uuid.UUID) (K, bool) {
	for _, e := range m {
		if e.provider == provider {
			return e.key, true
		}
	}
	var zero K
	return zero, false
}

// chat resolves id with PURPOSE_CHAT's rule: an unusable config is replaced by the default; a
// credential failure is an error.
func (r *resolution) chat(id uuid.UUID) (*Result, error) {
	cfg := r.lookup(id)
	unusable := Unusable(cfg, r.opts.AllowedHosts)
	if unusable == nil {
		return r.answer(cfg, id)
	}
	if id != uuid.Nil {
		unusable = unusable.With("model_config_id", id.String())
	}
	def := r.lookup(r.snap.DefaultID)
	if def == nil || def.ID == id {
		return nil, errs.Wrap(unusable, errs.NoUsableModelConfig,
			fmt.Sprintf("the requested model config is unusable (%s) and there is no usable default", unusable.Reason),
			"model_config_id", idString(id), "requested_reason", string(unusable.Reason))
	}
	if why := Unusable(def, r.opts.AllowedHosts); why != nil {
		return nil, errs.Wrap(why, errs.NoUsableModelConfig,
			fmt.Sprintf("the requested model config is unusable (%s) and so is the default (%s)", unusable.Reason, why.Reason),
			"model_config_id", idString(id), "requested_reason", string(unusable.Reason),
			"default_model_config_id", def.ID.String(), "default_reason", string(why.Reason))
	}
	res, err := r.answer(def, id)
	if err != nil {
		return nil, err
	}
	res.Fallback, res.FallbackReason = true, unusable.Reason
	return res, nil
}

// config resolves id with no fallback: it must be usable and have a credential.
func (r *resolution) config(id uuid.UUID) (*Result, error) {
	cfg := r.lookup(id)
	if unusable := Unusable(cfg, r.opts.AllowedHosts); unusable != nil {
		if id != uuid.Nil {
			unusable = unusable.With("model_config_id", id.String())
		}
		return nil, unusable
	}
	return r.answer(cfg, id)
}

// answer chooses cfg's credential and builds the result.
func (r *resolution) answer(cfg *ModelConfig, requested uuid.UUID) (*Result, error) {
	p := cfg.Provider
	choice := Choice{AllowBYOK: r.opts.AllowBYOK, Now: r.now}
	if turn := r.opts.Turn; turn != nil {
		choice.Turn = func() uint64 { return turn(p.ID) }
	}
	cred, err := ChooseCredential(r.ctx, p, choice, r.userKey(p.ID), r.centralKeys(p.ID))
	if err != nil {
		var e *errs.Error
		if _, soft := fallbackReason(err); soft && errors.As(err, &e) {
			return nil, e.With("model_config_id", cfg.ID.String())
		}
		return nil, err
	}
	return &Result{Config: cfg, Provider: p, Credential: cred, RequestedConfigID: requested}, nil
}

func (r *resolution) lookup(id uuid.UUID) *ModelConfig {
	if id == uuid.Nil {
		return nil
	}
	return r.snap.Configs[id]
}

func (r *resolution) userKey(providerID uuid.UUID) KeyLoader {
	return func() (*Key, error) {
		if k, ok := recall(r.userKeys, providerID); ok {
			return k, nil
		}
		k, err := r.src.UserKey(r.ctx, r.snap.Chat.OwnerID, providerID)
		if err != nil {
			return nil, hardError{fmt.Errorf("read the chat owner's key for provider %s: %w", providerID, err)}
		}
		r.userKeys = append(r.userKeys, keyMemo[*Key]{providerID, k})
		return k, nil
	}
}

func (r *resolution) centralKeys(providerID uuid.UUID) KeysLoader {
	return func() ([]*Key, error) {
		if k, ok := recall(r.centralPools, providerID); ok {
			return k, nil
		}
		k, err := r.src.CentralKeys(r.ctx, providerID)
		if err != nil {
			return nil, hardError{fmt.Errorf("read the central keys of provider %s: %w", providerID, err)}
		}
		r.centralPools = append(r.centralPools, keyMemo[[]*Key]{providerID, k})
		return k, nil
	}
}

// hardError marks an error that came from reading, not from a rule: it always ends the call.
type hardError struct{ error }

func (h hardError) Unwrap() error { return h.error }

// idString is id's text form, or "" for uuid.Nil (no config named).
func idString(id uuid.UUID) string {
	if id == uuid.Nil {
		return ""
	}
	return id.String()
}
