package cachedstore

import (
	"context"
	"encoding/hex"
	"sync/atomic"
	"time"

	"github.com/google/uuid"

	"github.com/resolverd/resolverd/internal/cache"
	"github.com/resolverd/resolverd/internal/db"
)

// Tokens (docs/CONTRACT.md §3.1, §5.1) are the front door: every authenticated call asks for one,
// and anyone who can reach the port can send any "rsv_…" string. What is kept, by SHA-256 hash
// (never the token itself):
//
//   - active tokens, as long as the other entries (the cache TTL), honouring their expiry;
//   - unknown hashes (no active token: never created, expired or revoked), for NegativeTokenTTL, so
//     that a caller repeating a wrong token costs one lookup per NegativeTokenTTL, not one per call;
//   - hashes known to have been valid recently (RecentlyValidTTL), as a hint only: it never
//     authenticates anyone, it decides which lane a lookup waits in.
//
// Lookups that must go to PostgreSQL wait in one of two bounded lanes. Hashes never seen valid
// share TokenLoadsAtOnce places, so a flood of made-up tokens queues there and never takes more
// than that many pooled connections; hashes known to have been valid use KnownTokenLoadsAtOnce
// places of their own, so a real caller whose entry was just dropped (its token changed, the TTL
// ran out, the listener reconnected) is looked up at once, however long the flood's queue is.
//
// Only a valid token, a change notification or this replica's own CreateToken puts a hash into the
// known set, so made-up tokens cannot get into the known lane; a hash found not active leaves it.
//
// Freshness: a change notification names the token's hash (migration 7 and 9's triggers) and
// drops that token's entries alone, its negative entry included, so a token created after it was
// tried works on every replica as soon as the notification arrives (within the 1 second of
// docs/CONTRACT.md §5.1); this replica's own CreateToken and RevokeToken act at once. A lookup that
// raced a change never stores what it read (the generation counter), a negative entry included.

const (
	// TokenLoadsAtOnce is how many lookups of hashes never seen valid may wait on the database at
	// the same time (the pool holds max(16, 4 × CPUs) connections by default).
	TokenLoadsAtOnce = 4
	// KnownTokenLoadsAtOnce is how many lookups of hashes known to have been valid may wait on the
	// database at the same time: after a flush every caller's token reloads here.
	KnownTokenLoadsAtOnce = 8
	// NegativeTokenTTL is how long "no active token has this hash" is remembered (at most the cache
	// TTL). A new token does not wait for it: its insert notification drops the entry. It is a
	// backstop for writes that fire no trigger, so it is kept short; the saving it buys is already
	// whole at this length (one lookup per 10 s for a hash repeated at any rate).
	NegativeTokenTTL = 10 * time.Second
	// RecentlyValidTTL is how long a hash stays in the known lane after it was last found valid:
	// long enough that a token used once a day still gets the known lane.
	RecentlyValidTTL = 24 * time.Hour
)

type tokenEntry struct{ t db.Token }

// tokenCache is the Store's token state; its entries change under Store.mu like the others.
type tokenCache struct {
	active  *cache.LRU[[32]byte, tokenEntry]
	unknown *cache.LRU[[32]byte, struct{}] // no active token has this hash
	valid   *cache.LRU[[32]byte, struct{}] // was valid recently: the known lane

	unseenLoads, knownLoads chan struct{}

	lookups, knownLookups, notFound, negativeHits atomic.Uint64
}

func newTokenCache(max int, ttl time.Duration) tokenCache {
	return tokenCache{
		active:      cache.New[[32]byte, tokenEntry](max, ttl),
		unknown:     cache.New[[32]byte, struct{}](max, min(ttl, NegativeTokenTTL)),
		valid:       cache.New[[32]byte, struct{}](max, RecentlyValidTTL),
		unseenLoads: make(chan struct{}, TokenLoadsAtOnce),
		knownLoads:  make(chan struct{}, KnownTokenLoadsAtOnce),
	}
}

// clear drops what may be stale. The known set stays: it is a hint that never authenticates, and
// after a flush it is what lets real callers reload ahead of a flood.
func (c *tokenCache) clear() {
	c.active.Clear()
	c.unknown.Clear()
}

// invalidate drops what a change to api_tokens names: the token by hash (what notifications
// carry), else by id (this replica's RevokeToken), else every token.
func (c *tokenCache) invalidate(ch db.Change) {
	if b, err := hex.DecodeString(ch.TokenHash); err == nil && len(b) == 32 {
		h := [32]byte(b)
		c.active.Delete(h)
		c.unknown.Delete(h)
		// A row with this hash exists (or did): its next lookup goes to the known lane, so a token
		// just created is served ahead of a flood on every replica.
		c.valid.Put(h, struct{}{})
		return
	}
	if id, err := uuid.Parse(ch.ID); err == nil {
		c.active.DeleteFunc(func(_ [32]byte, e tokenEntry) bool { return e.t.ID == id })
		c.unknown.Clear() // which hash the row has is not known; negative entries are cheap to rebuild
		return
	}
	c.clear()
}

// ActiveToken serves an active token from memory when it can, honouring its expiry, and an unknown
// hash's absence likewise; otherwise it looks the hash up in the lane its history gives it.
func (s *Store) ActiveToken(ctx context.Context, hash []byte) (db.Token, bool, error) {
	c := &s.tok
	var h [32]byte
	hashed := len(hash) == 32
	copy(h[:], hash)
	if hashed && s.live.Load() {
		if e, ok := c.active.Get(h); ok {
			if e.t.ExpiresAt == nil || time.Now().Before(*e.t.ExpiresAt) {
				s.hits.Add(1)
				return e.t, true, nil
			}
			c.active.Delete(h)
		}
		if _, ok := c.unknown.Get(h); ok {
			s.hits.Add(1)
			c.negativeHits.Add(1)
			return db.Token{}, false, nil
		}
	}
	s.misses.Add(1)
	lane, known := c.unseenLoads, false
	if hashed {
		if _, known = c.valid.Get(h); known {
			lane = c.knownLoads
		}
	}
	select {
	case lane <- struct{}{}:
		defer func() { <-lane }()
	case <-ctx.Done():
		return db.Token{}, false, ctx.Err()
	}
	c.lookups.Add(1)
	if known {
		c.knownLookups.Add(1)
	}
	gen0 := s.gen.Current()
	t, ok, err := s.Store.ActiveToken(ctx, hash)
	if err != nil {
		return db.Token{}, false, err
	}
	if !ok {
		c.notFound.Add(1)
		if hashed {
			s.store(gen0, func() {
				c.valid.Delete(h)
				c.unknown.Put(h, struct{}{})
			})
		}
		return db.Token{}, false, nil
	}
	if hashed {
		c.valid.Put(h, struct{}{})
		s.store(gen0, func() { c.active.Put(h, tokenEntry{t: t}) })
	}
	return t, true, nil
}
