// Package cachedstore serves what resolutions and authentication read from memory, and keeps it
// fresh by push: PostgreSQL triggers publish every committed change (migration 7), db.Listener
// delivers them, and the store drops the entries they name. It serves from memory only while the
// listener is connected; when it is not, every read goes to the database (never an entry it cannot
// prove fresh), and on (re)connection everything is dropped. A TTL bounds staleness even if
// notifications stopped without the listener noticing.
//
// It wraps *db.Store with the same methods, so internal/dbauthz wraps it unchanged: scope checks
// still happen where rows are read, whether they come from memory or from PostgreSQL.
package cachedstore

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"

	"github.com/resolverd/resolverd/internal/cache"
	"github.com/resolverd/resolverd/internal/db"
	"github.com/resolverd/resolverd/internal/resolve"
)

// Options bound the cache.
type Options struct {
	// MaxEntries bounds each of the large kinds (chats, model configs, user keys); central keys,
	// workload identities and tokens (active, unknown and recently valid hashes, each) get a tenth
	// of it (at least 1,000). Default 100,000.
	MaxEntries int
	// TTL is the longest an entry is served without being read again (default 60s): a backstop
	// only, since changes are pushed and a silent listener is noticed within a second.
	TTL time.Duration
}

// Stats counts cache use.
type Stats struct {
	Hits, Misses, Invalidations, Flushes uint64
	// Reconnects counts the listener's connections after its first.
	Reconnects uint64
	Live       bool
	// TokenLookups counts the token lookups that went to PostgreSQL; KnownTokenLookups those of
	// them in the lane of hashes known to have been valid (the rest: hashes never seen valid).
	TokenLookups, KnownTokenLookups uint64
	// TokensNotFound counts lookups that found no active token; TokenNegativeHits the calls
	// answered "unknown" from memory, without a lookup (counted in Hits too).
	TokensNotFound, TokenNegativeHits uint64
}

type userProvider struct{ user, provider uuid.UUID }

// keyEntry caches a key lookup; a nil key caches "there is none". The key is kept sealed and opened
// when a resolution first answers with it; the opened value then stays with the entry (resolve.Key),
// so warm resolutions do not decrypt, and a key never chosen is never decrypted.
type keyEntry struct{ key *resolve.Key }

// poolEntry caches a provider's enabled central keys, oldest first, each sealed with its health as
// read (docs/CONTRACT.md §2.2): a warm resolution chooses among them in memory, by the provider's
// policy and the time, and opens only the one it chooses. A report or an admin change of any of
// them replaces the whole entry (its notification names the provider).
type poolEntry struct{ keys []*resolve.Key }

// configEntry caches a config with its provider attached, as the rules read it (shared and never
// changed: a change replaces the entry); a nil config caches "there is none". A provider change
// drops the configs of that provider.
type configEntry struct{ cfg *resolve.ModelConfig }

// defaultEntry is the id of the live default config (uuid.Nil: there is none) and when it expires
// (cache.Now's clock).
type defaultEntry struct {
	id      uuid.UUID
	expires int64
}

// chatEntry is a cached chat and the last snapshot served for it from memory.
type chatEntry struct {
	chat resolve.Chat
	memo atomic.Pointer[snapshotMemo]
}

// snapshotMemo is a snapshot built from memory, served again instead of being built anew (its map
// was the largest allocation of a warm resolution, and its parts several cache reads) while it is
// exactly what building it would give: the same requested config, no invalidation since it was
// built (gen: every change and flush bumps it, after dropping what it names), and none of its
// parts expired. Snapshots are read-only to the rules, so one is shared by concurrent calls.
type snapshotMemo struct {
	snap      resolve.Snapshot // in the memo itself: one memory access less on the warm path
	requested uuid.UUID
	gen       uint64
	expires   int64 // the earliest expiry of its parts (cache.Now's clock)
}

// Store is the caching store.
type Store struct {
	*db.Store // every method not redefined here goes straight to the database

	ttl      time.Duration
	chats    *cache.LRU[uuid.UUID, *chatEntry]
	configs  *cache.LRU[uuid.UUID, configEntry]
	central  *cache.LRU[uuid.UUID, poolEntry]
	userKeys *cache.LRU[userProvider, keyEntry]
	tok      tokenCache // tokens.go
	dflt     atomic.Pointer[defaultEntry]

	// identities caches workload identities' bindings by subject (identities.go).
	identities *cache.LRU[string, identityEntry]

	// mu orders invalidations against the storing of loads: a load stores what it read only if no
	// invalidation (gen) happened since it began, checked and stored under mu.
	mu   sync.Mutex
	gen  cache.Generation
	live atomic.Bool

	hits, misses, invalidations, flushes atomic.Uint64
	connects                             atomic.Uint64
}

// New wraps s. It serves from memory only once Connected is called (by the listener).
func New(s *db.Store, o Options) *Store {
	if o.MaxEntries <= 0 {
		o.MaxEntries = 100_000
	}
	if o.TTL <= 0 {
		o.TTL = 60 * time.Second
	}
	small := max(o.MaxEntries/10, 1000)
	return &Store{
		Store:    s,
		ttl:      o.TTL,
		chats:    cache.New[uuid.UUID, *chatEntry](o.MaxEntries, o.TTL),
		configs:  cache.New[uuid.UUID, configEntry](o.MaxEntries, o.TTL),
		central:  cache.New[uuid.UUID, poolEntry](small, o.TTL),
		userKeys: cache.New[userProvider, keyEntry](o.MaxEntries, o.TTL),
		tok:      newTokenCache(small, o.TTL),

		identities: cache.New[string, identityEntry](small, o.TTL),
	}
}

// Stats reports cache use.
func (s *Store) Stats() Stats {
	known := s.tok.knownLookups.Load() // first: it never runs ahead of lookups
	return Stats{Hits: s.hits.Load(), Misses: s.misses.Load(), Invalidations: s.invalidations.Load(),
		Flushes: s.flushes.Load(), Reconnects: max(s.connects.Load(), 1) - 1, Live: s.live.Load(),
		TokenLookups: s.tok.lookups.Load(), KnownTokenLookups: known,
		TokensNotFound: s.tok.notFound.Load(), TokenNegativeHits: s.tok.negativeHits.Load()}
}

// --- keeping fresh (db.ChangeHandler) ---

// Connected: the listener is listening again; whatever happened meanwhile is unknown.
func (s *Store) Connected() {
	s.connects.Add(1)
	s.flush()
	s.live.Store(true)
}

// Disconnected: changes may be missed from now on, so stop serving from memory.
func (s *Store) Disconnected(error) {
	s.live.Store(false)
	s.flush()
}

// Changed drops the entries a committed change names.
func (s *Store) Changed(c db.Change) {
	s.invalidate(c)
}

func (s *Store) flush() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.flushLocked()
}

func (s *Store) flushLocked() {
	s.gen.Bump()
	s.flushes.Add(1)
	s.chats.Clear()
	s.configs.Clear()
	s.central.Clear()
	s.userKeys.Clear()
	s.tok.clear()
	s.identities.Clear()
	s.dflt.Store(nil)
	s.gen.Bump() // again, now that all is dropped: see snapshotMemo
}

// invalidate drops what c names. A change it cannot place drops everything.
func (s *Store) invalidate(c db.Change) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if c.Flush {
		s.flushLocked()
		return
	}
	s.gen.Bump()
	// Again once what c names is dropped: a snapshot built between the two bumps may hold what
	// was being dropped, and must not be served again (snapshotMemo).
	defer s.gen.Bump()
	s.invalidations.Add(1)
	id, _ := uuid.Parse(c.ID)
	provider, providerErr := uuid.Parse(c.ProviderID)
	switch c.Table {
	case "ai_providers":
		s.configs.DeleteFunc(func(_ uuid.UUID, e configEntry) bool { return e.cfg != nil && e.cfg.ProviderID == id })
	case "chat_model_configs":
		s.configs.Delete(id)
		s.dflt.Store(nil) // any config change can move the default flag
	case "ai_provider_keys":
		if providerErr == nil {
			s.central.Delete(provider)
		} else {
			s.central.Clear()
		}
	case "user_ai_provider_keys":
		if user, err := uuid.Parse(c.UserID); err == nil && providerErr == nil {
			s.userKeys.Delete(userProvider{user, provider})
		} else {
			s.userKeys.Clear()
		}
	case "chats":
		s.chats.Delete(id)
	case "api_tokens":
		s.tok.invalidate(c) // that token only, when the change names it
	case "workload_identities":
		s.invalidateIdentity(c)
	default:
		s.flushLocked()
	}
}

// store runs put unless an invalidation happened since gen0 or the cache is not live.
func (s *Store) store(gen0 uint64, put func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.live.Load() && s.gen.Current() == gen0 {
		put()
	}
}

// --- reads ---

// ResolutionSnapshot serves the chat, its configs and their providers from memory when all are
// there; otherwise it loads everything (and the prefetched keys) in one round trip and keeps it.
func (s *Store) ResolutionSnapshot(ctx context.Context, chatID, requestedConfigID uuid.UUID, pre db.Prefetch) (*resolve.Snapshot, error) {
	if s.live.Load() {
		if snap, ok := s.snapshotFromMemory(chatID, requestedConfigID); ok {
			s.hits.Add(1)
			return snap, nil
		}
	}
	s.misses.Add(1)
	gen0 := s.gen.Current()
	l, err := s.Store.LoadResolution(ctx, chatID, requestedConfigID, pre)
	if err != nil {
		return nil, err
	}
	s.store(gen0, func() { s.keep(l, requestedConfigID, pre) })
	return l.Snapshot, nil
}

func (s *Store) snapshotFromMemory(chatID, requested uuid.UUID) (*resolve.Snapshot, bool) {
	ce, expires, ok := s.chats.GetExpiring(chatID)
	if !ok {
		return nil, false
	}
	// Read before the parts: a memo is served only while no change or flush came since (one in
	// progress bumps it again when done).
	gen := s.gen.Current()
	now := cache.Now()
	if m := ce.memo.Load(); m != nil && m.requested == requested && m.gen == gen && now < m.expires {
		return &m.snap, true
	}
	d := s.dflt.Load()
	if d == nil || now >= d.expires {
		return nil, false
	}
	expires = min(expires, d.expires)
	chat := ce.chat
	m := &snapshotMemo{requested: requested, gen: gen,
		snap: resolve.Snapshot{Chat: chat, DefaultID: d.id, Configs: make(map[uuid.UUID]*resolve.ModelConfig, 3)}}
	snap := &m.snap
	for _, id := range [3]uuid.UUID{requested, chat.ModelConfigID, d.id} {
		if id == uuid.Nil {
			continue
		}
		if _, done := snap.Configs[id]; done {
			continue
		}
		cfg, exp, ok := s.configs.GetExpiring(id)
		if !ok {
			return nil, false
		}
		expires = min(expires, exp)
		if cfg.cfg != nil { // nil: known not to exist
			snap.Configs[id] = cfg.cfg
		}
	}
	m.expires = expires
	ce.memo.Store(m)
	return snap, true
}

// keep stores what a load read, including "does not exist" for configs and keys it looked for.
func (s *Store) keep(l *db.Loaded, requested uuid.UUID, pre db.Prefetch) {
	snap := l.Snapshot
	s.chats.Put(snap.Chat.ID, &chatEntry{chat: snap.Chat})
	for _, id := range []uuid.UUID{requested, snap.Chat.ModelConfigID} {
		if id != uuid.Nil && snap.Configs[id] == nil {
			s.configs.Put(id, configEntry{})
		}
	}
	for id, c := range snap.Configs {
		s.configs.Put(id, configEntry{cfg: c})
	}
	s.dflt.Store(&defaultEntry{id: snap.DefaultID, expires: cache.Now() + int64(s.ttl)})
	if pre.CentralKeys {
		for p, k := range l.CentralKeys {
			s.central.Put(p, poolEntry{keys: k})
		}
	}
	if pre.UserKeys {
		for p, k := range l.UserKeys {
			s.userKeys.Put(userProvider{snap.Chat.OwnerID, p}, keyEntry{key: k})
		}
	}
}

// UserKey serves the user's key for a provider (or its absence) from memory when it can.
func (s *Store) UserKey(ctx context.Context, userID, providerID uuid.UUID) (*resolve.Key, error) {
	k := userProvider{userID, providerID}
	if s.live.Load() {
		if e, ok := s.userKeys.Get(k); ok {
			s.hits.Add(1)
			return e.key, nil
		}
	}
	s.misses.Add(1)
	gen0 := s.gen.Current()
	key, err := s.Store.UserKey(ctx, userID, providerID)
	if err != nil {
		return nil, err
	}
	s.store(gen0, func() { s.userKeys.Put(k, keyEntry{key: key}) })
	return key, nil
}

// EnabledCentralKeys serves the provider's enabled central keys with their health (or that it has
// none) from memory when it can.
func (s *Store) EnabledCentralKeys(ctx context.Context, providerID uuid.UUID) ([]*resolve.Key, error) {
	if s.live.Load() {
		if e, ok := s.central.Get(providerID); ok {
			s.hits.Add(1)
			return e.keys, nil
		}
	}
	s.misses.Add(1)
	gen0 := s.gen.Current()
	keys, err := s.Store.EnabledCentralKeys(ctx, providerID)
	if err != nil {
		return nil, err
	}
	s.store(gen0, func() { s.central.Put(providerID, poolEntry{keys: keys}) })
	return keys, nil
}
