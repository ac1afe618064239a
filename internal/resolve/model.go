// Package resolve holds the decision rules of docs/CONTRACT.md §2: when a model config is usable, which
// credential a provider gives, and what each purpose does when the requested config cannot be used.
// It is plain Go over plain structs: no SQL, no gRPC. Start reading here.
package resolve

import (
	"context"
	"fmt"
	"maps"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"

	"github.com/resolverd/resolverd/internal/errs"
	"github.com/resolverd/resolverd/pkg/secret"
)

// BYOKPolicy is a provider's bring-your-own-key policy.
type BYOKPolicy string

const (
	BYOKDisabled BYOKPolicy = "disabled"
	BYOKOptional BYOKPolicy = "optional"
	BYOKRequired BYOKPolicy = "required"
)

// CentralKeyPolicy is a provider's central_key_policy: which of its available central keys a
// resolution answers with (docs/CONTRACT.md §2.2).
type CentralKeyPolicy string

const (
	// PolicyOldest answers with the oldest available key, by (created_at, id): the default.
	PolicyOldest CentralKeyPolicy = "oldest"
	// PolicyRoundRobin spreads successive resolutions over the available keys, in turn.
	PolicyRoundRobin CentralKeyPolicy = "round_robin"
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
	// CentralKeyPolicy chooses among the enabled central keys; "" means PolicyOldest.
	CentralKeyPolicy CentralKeyPolicy
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

// Key is a central or user key as read: its id, and its value still sealed. The value is opened
// (decrypted and fingerprinted) only when a resolution answers with this key (docs/CONTRACT.md
// §7.1), so a key the rules do not choose is never decrypted, a denied scope is refused before
// any decryption, and a damaged row fails only the resolutions that would answer with it. A policy
// choosing among several keys picks by id (and whatever else it is given) and opens only the one it
// picked.
//
// A Key is shared: the cache keeps it and concurrent resolutions read it. It keeps what it opened,
// so a warm resolution does not decrypt again. It keeps a SECRET_UNREADABLE failure too (the stored
// value cannot change under it: a change to the row replaces the cached Key), so every resolution
// needing it fails at once without decrypting, logging and counting again; any other failure (the
// fingerprint key could not be read) is tried again next time. Always use it by pointer.
type Key struct {
	ID uuid.UUID
	// Health is what workers reported about the key (docs/CONTRACT.md §17), as the row said when
	// it was read. Set before the Key is shared, never after: a report changes the row, and the
	// change replaces the cached Key.
	Health Health

	open   Opener
	opened atomic.Pointer[openedKey]
}

// Health is a key's health as the rules use it.
type Health struct {
	// CoolingUntil: a central key is skipped until this moment (zero: it is not cooling down). A
	// time in the past is a cooldown that ended.
	CoolingUntil time.Time
	// Suspended: a central key suspended until an admin enables it again or rotates, or a user's
	// key marked invalid until the user puts a new one.
	Suspended bool
}

// Available reports whether a key with this health may be served at now: not suspended, and not
// cooling down (now is at or after CoolingUntil).
func (h Health) Available(now time.Time) bool {
	return !h.Suspended && !now.Before(h.CoolingUntil)
}

// Opener opens one sealed key: it returns the plaintext and its fingerprint, or an error (a value
// that does not open in its place is SECRET_UNREADABLE).
type Opener func(ctx context.Context) (secret.String, string, error)

// openedKey is what opening gave: the plaintext and fingerprint, or a lasting failure.
type openedKey struct {
	secret      secret.String
	fingerprint string
	err         error
}

// SealedKey is a key whose value open will open when the key is chosen.
func SealedKey(id uuid.UUID, open Opener) *Key {
	return &Key{ID: id, open: open}
}

// OpenedKey is a key whose plaintext is already known (tests, fakes). An empty fingerprint is
// computed by whoever renders the credential.
func OpenedKey(id uuid.UUID, s secret.String, fingerprint string) *Key {
	k := &Key{ID: id}
	k.opened.Store(&openedKey{secret: s, fingerprint: fingerprint})
	return k
}

// Open returns the key's plaintext and fingerprint, opening it the first time.
func (k *Key) Open(ctx context.Context) (secret.String, string, error) {
	if o := k.opened.Load(); o != nil {
		return o.secret, o.fingerprint, o.err
	}
	if k.open == nil {
		return secret.String{}, "", fmt.Errorf("key %s has no value to open", k.ID)
	}
	s, fp, err := k.open(ctx)
	switch {
	case errs.Is(err, errs.SecretUnreadable):
		k.opened.CompareAndSwap(nil, &openedKey{err: err})
	case err != nil:
		return secret.String{}, "", err
	default:
		// Concurrent first opens compute the same value; whichever is stored first is kept.
		k.opened.CompareAndSwap(nil, &openedKey{secret: s, fingerprint: fp})
	}
	o := k.opened.Load()
	return o.secret, o.fingerprint, o.err
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
	// UserKeySkipped is why the chat owner's own key was passed over although BYOK is allowed and
	// the owner has one (USER_KEY_INVALID), when it was; "" otherwise.
	UserKeySkipped errs.Reason
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

// Turns are one replica's round-robin counters, one per provider (docs/CONTRACT.md §2.2). Each
// round-robin choice among n available keys takes the next turn and answers with available key
// turn mod n, so within a replica successive choices visit the keys in order and no key gets more
// than one answer ahead of another. Replicas count independently: over m choices spread over R
// replicas each key gets m/n answers give or take R. Each provider's counter starts at a random
// turn, so replicas started together do not all begin with the oldest key.
//
// Reads take no lock and allocate nothing; a provider's first choice copies the map.
type Turns struct {
	mu sync.Mutex
	m  atomic.Pointer[map[uuid.UUID]*atomic.Uint64]
}

// NewTurns returns counters for a replica.
func NewTurns() *Turns { return &Turns{} }

// Next returns provider's next turn.
func (t *Turns) Next(provider uuid.UUID) uint64 {
	if m := t.m.Load(); m != nil {
		if c, ok := (*m)[provider]; ok {
			return c.Add(1)
		}
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	old := t.m.Load()
	if old != nil {
		if c, ok := (*old)[provider]; ok {
			return c.Add(1)
		}
	}
	next := make(map[uuid.UUID]*atomic.Uint64, 1)
	if old != nil {
		maps.Copy(next, *old)
	}
	c := &atomic.Uint64{}
	c.Store(rand.Uint64())
	next[provider] = c
	t.m.Store(&next)
	return c.Add(1)
}
