// Package cache is a bounded, sharded LRU with a time-to-live, and the generation counter that
// keeps a slow load from putting a stale value back after an invalidation. It knows nothing of
// PostgreSQL or gRPC.
package cache

import (
	"container/list"
	"hash/maphash"
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
	now    func() time.Time
}

type shard[K comparable, V any] struct {
	mu    sync.Mutex
	max   int
	items map[K]*list.Element
	order *list.List // front: most recently used
}

type entry[K comparable, V any] struct {
	key     K
	val     V
	expires time.Time
}

// New returns an LRU holding at most max entries (spread over shards), each for at most ttl.
func New[K comparable, V any](max int, ttl time.Duration) *LRU[K, V] {
	c := &LRU[K, V]{seed: maphash.MakeSeed(), ttl: ttl, now: time.Now}
	per := max / shards
	if per < 1 {
		per = 1
	}
	for i := range c.shards {
		c.shards[i] = shard[K, V]{max: per, items: map[K]*list.Element{}, order: list.New()}
	}
	return c
}

func (c *LRU[K, V]) shard(k K) *shard[K, V] {
	return &c.shards[maphash.Comparable(c.seed, k)%shards]
}

// Get returns the live value of k.
func (c *LRU[K, V]) Get(k K) (V, bool) {
	s := c.shard(k)
	s.mu.Lock()
	defer s.mu.Unlock()
	el, ok := s.items[k]
	if !ok {
		var zero V
		return zero, false
	}
	e := el.Value.(*entry[K, V])
	if !c.now().Before(e.expires) {
		s.order.Remove(el)
		delete(s.items, k)
		var zero V
		return zero, false
	}
	s.order.MoveToFront(el)
	return e.val, true
}

// Put stores v under k, evicting the least recently used entry of its shard when full.
func (c *LRU[K, V]) Put(k K, v V) {
	s := c.shard(k)
	s.mu.Lock()
	defer s.mu.Unlock()
	exp := c.now().Add(c.ttl)
	if el, ok := s.items[k]; ok {
		e := el.Value.(*entry[K, V])
		e.val, e.expires = v, exp
		s.order.MoveToFront(el)
		return
	}
	s.items[k] = s.order.PushFront(&entry[K, V]{key: k, val: v, expires: exp})
	for s.order.Len() > s.max {
		last := s.order.Back()
		s.order.Remove(last)
		delete(s.items, last.Value.(*entry[K, V]).key)
	}
}

// Delete removes k.
func (c *LRU[K, V]) Delete(k K) {
	s := c.shard(k)
	s.mu.Lock()
	defer s.mu.Unlock()
	if el, ok := s.items[k]; ok {
		s.order.Remove(el)
		delete(s.items, k)
	}
}

// DeleteFunc removes every entry whose key matches.
func (c *LRU[K, V]) DeleteFunc(match func(K) bool) {
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.Lock()
		for k, el := range s.items {
			if match(k) {
				s.order.Remove(el)
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
		s.items = map[K]*list.Element{}
		s.order.Init()
		s.mu.Unlock()
	}
}

// Len counts the entries (expired ones not yet evicted included).
func (c *LRU[K, V]) Len() int {
	n := 0
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.Lock()
		n += len(s.items)
		s.mu.Unlock()
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
