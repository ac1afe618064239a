// Package cache is a bounded, sharded cache with a time-to-live, and the generation counter that
// keeps a slow load from putting a stale value back after an invalidation. It knows nothing of
// PostgreSQL or gRPC.
//
// Eviction is CLOCK (second chance), an approximation of LRU whose reads take only a shared lock
// and set a flag: the warm path reads far more often than anything is stored.
package cache

import (
	"hash/maphash"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"
)

const shards = 16

// LRU maps K to V, holding at most about Max entries, each for at most TTL.
type LRU[K comparable, V any] struct {
	seed   maphash.Seed
	shards [shards]shard[K, V]
	ttl    time.Duration
}

type shard[K comparable, V any] struct {
	mu    sync.RWMutex
	max   int
	items map[K]*entry[K, V]
	ring  []*entry[K, V] // insertion order; the clock hand sweeps it
	hand  int
}

type entry[K comparable, V any] struct {
	key     K
	val     V
	expires int64 // monotonic nanoseconds (now)
	slot    int   // its place in the ring
	used    atomic.Bool
	dead    bool // removed from items; its ring slot is reused
}

// epoch starts the clock of expiries.
var epoch = time.Now()

// now is the monotonic time since epoch: every read of the warm path checks an expiry, and the
// monotonic clock alone costs half of time.Now (which reads the wall clock too), and does not jump
// when the wall clock is set.
func now() int64 { return int64(time.Since(epoch)) }

// New returns a cache holding at most max entries (spread over shards), each for at most ttl.
func New[K comparable, V any](max int, ttl time.Duration) *LRU[K, V] {
	c := &LRU[K, V]{seed: maphash.MakeSeed(), ttl: ttl}
	per := max / shards
	if per < 1 {
		per = 1
	}
	for i := range c.shards {
		c.shards[i] = shard[K, V]{max: per, items: map[K]*entry[K, V]{}}
	}
	return c
}

func (c *LRU[K, V]) shard(k K) *shard[K, V] {
	return &c.shards[maphash.Comparable(c.seed, k)%shards]
}

// Get returns the live value of k.
func (c *LRU[K, V]) Get(k K) (V, bool) {
	v, _, ok := c.GetExpiring(k)
	return v, ok
}

// GetExpiring returns the live value of k and when it expires, on the clock of Now.
func (c *LRU[K, V]) GetExpiring(k K) (V, int64, bool) {
	s := c.shard(k)
	s.mu.RLock()
	e, ok := s.items[k]
	s.mu.RUnlock()
	if !ok || now() >= e.expires {
		var zero V
		return zero, 0, false
	}
	if !e.used.Load() {
		e.used.Store(true)
	}
	return e.val, e.expires, true
}

// Now is the time on the clock of the expiries GetExpiring returns (monotonic nanoseconds).
func Now() int64 { return now() }

// Put stores v under k, evicting an entry not used since the clock hand last passed when full.
func (c *LRU[K, V]) Put(k K, v V) {
	s := c.shard(k)
	s.mu.Lock()
	defer s.mu.Unlock()
	// Up to a quarter off the TTL, at random: entries stored together (a warm-up, a flush) do not
	// all expire and reload in the same instant.
	exp := now() + int64(c.ttl-time.Duration(rand.Int64N(int64(c.ttl)/4+1)))
	e := &entry[K, V]{key: k, val: v, expires: exp}
	if old, ok := s.items[k]; ok {
		// A new value takes the old one's place: readers holding the old entry finish with it, new
		// readers see e, and the ring does not fill with stale copies (a reload after the TTL).
		old.dead = true
		e.slot = old.slot
		s.ring[e.slot] = e
		s.items[k] = e
		return
	}
	s.items[k] = e
	if len(s.ring) < s.max {
		e.slot = len(s.ring)
		s.ring = append(s.ring, e)
		return
	}
	// Sweep for a victim: a dead slot, or an entry whose used flag is clear (clearing as we go).
	for {
		if s.hand >= len(s.ring) {
			s.hand = 0
		}
		v := s.ring[s.hand]
		if v.dead || !v.used.Swap(false) {
			if !v.dead && s.items[v.key] == v {
				delete(s.items, v.key)
			}
			e.slot = s.hand
			s.ring[s.hand] = e
			s.hand++
			return
		}
		s.hand++
	}
}

// Delete removes k.
func (c *LRU[K, V]) Delete(k K) {
	s := c.shard(k)
	s.mu.Lock()
	defer s.mu.Unlock()
	if e, ok := s.items[k]; ok {
		e.dead = true
		delete(s.items, k)
	}
}

// DeleteFunc removes every entry for which match reports true.
func (c *LRU[K, V]) DeleteFunc(match func(K, V) bool) {
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.Lock()
		for k, e := range s.items {
			if match(k, e.val) {
				e.dead = true
				delete(s.items, k)
			}
		}
		s.mu.Unlock()
	}
}

// Clear removes everything.
func (c *LRU[K, V]) Clear() {
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.Lock()
		s.items = map[K]*entry[K, V]{}
		s.ring, s.hand = nil, 0
		s.mu.Unlock()
	}
}

// Len counts the entries (expired ones not yet evicted included).
func (c *LRU[K, V]) Len() int {
	n := 0
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.RLock()
		n += len(s.items)
		s.mu.RUnlock()
	}
	return n
}

// Generation counts invalidations. A loader reads it before going to the database and stores
// what it read only if no invalidation happened meanwhile: an invalidation that raced the load
// might otherwise be undone by the load's older value.
type Generation struct{ n atomic.Uint64 }

// Current is the generation to compare against after a load.
func (g *Generation) Current() uint64 { return g.n.Load() }

// Bump records an invalidation.
func (g *Generation) Bump() { g.n.Add(1) }
