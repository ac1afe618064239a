package cache

import (
	"fmt"
	"sync"
	"testing"
	"time"
)

func TestGetPutDelete(t *testing.T) {
	c := New[string, int](1000, time.Hour)
	if _, ok := c.Get("a"); ok {
		t.Fatal("empty cache hit")
	}
	c.Put("a", 1)
	c.Put("a", 2)
	if v, ok := c.Get("a"); !ok || v != 2 {
		t.Fatalf("Get = %d, %v", v, ok)
	}
	c.Delete("a")
	if _, ok := c.Get("a"); ok {
		t.Fatal("deleted entry served")
	}
	for i := range 10 {
		c.Put(fmt.Sprint(i), i)
	}
	c.DeleteFunc(func(_ string, v int) bool { return v%2 == 0 })
	for i := range 10 {
		if _, ok := c.Get(fmt.Sprint(i)); ok != (i%2 == 1) {
			t.Fatalf("after DeleteFunc, %d present = %v", i, ok)
		}
	}
	c.Clear()
	if c.Len() != 0 {
		t.Fatalf("Len after Clear = %d", c.Len())
	}
}

func TestTTL(t *testing.T) {
	// Long enough that a stalled CI machine does not expire the entry before the first Get (the
	// jitter makes a TTL 75-100% of the bound).
	c := New[int, int](100, 500*time.Millisecond)
	c.Put(1, 1)
	if _, ok := c.Get(1); !ok {
		t.Fatal("fresh entry missing")
	}
	time.Sleep(600 * time.Millisecond)
	if _, ok := c.Get(1); ok {
		t.Fatal("expired entry served")
	}
}

// TestBoundedAndKeepsWhatIsUsed: the cache never holds more than its bound, and an entry read
// between insertions survives a sweep that evicts unread ones.
func TestBoundedAndKeepsWhatIsUsed(t *testing.T) {
	c := New[int, int](16*10, time.Hour) // 10 per shard
	for i := range 100_000 {
		c.Put(i, i)
		if i%1000 == 0 {
			c.Get(-1)
		}
	}
	if n := c.Len(); n > 160 {
		t.Fatalf("holds %d entries, bound 160", n)
	}
	hot := New[int, int](16*10, time.Hour)
	hot.Put(-1, -1)
	for i := range 10_000 {
		hot.Get(-1)
		hot.Put(i, i)
	}
	if _, ok := hot.Get(-1); !ok {
		t.Fatal("an entry read all along was evicted")
	}
}

func TestConcurrent(t *testing.T) {
	c := New[int, int](1000, time.Hour)
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := range 10_000 {
				k := (i * (w + 1)) % 3000
				switch i % 4 {
				case 0:
					c.Put(k, k)
				case 1:
					c.Delete(k)
				default:
					if v, ok := c.Get(k); ok && v != k {
						t.Errorf("Get(%d) = %d", k, v)
					}
				}
			}
		}(w)
	}
	wg.Wait()
	if c.Len() > 1000 {
		t.Fatalf("Len %d over the bound", c.Len())
	}
}

// TestReplacingKeepsTheRingSmall: storing a key again reuses its slot, so a cache whose entries are
// all reloaded (after their TTL) does not fill its ring with stale copies.
func TestReplacingKeepsTheRingSmall(t *testing.T) {
	c := New[int, int](16*1000, time.Hour)
	for round := range 50 {
		for k := range 100 {
			c.Put(k, round)
		}
	}
	ring := 0
	for i := range c.shards {
		ring += len(c.shards[i].ring)
	}
	if ring != 100 || c.Len() != 100 {
		t.Fatalf("100 keys stored 50 times each: ring %d, entries %d", ring, c.Len())
	}
	for k := range 100 {
		if v, ok := c.Get(k); !ok || v != 49 {
			t.Fatalf("Get(%d) = %d, %v", k, v, ok)
		}
	}
}

// BenchmarkGet: a hit, what every warm read pays (one per table a resolution reads).
func BenchmarkGet(b *testing.B) {
	c := New[[16]byte, int](1000, time.Minute)
	k := [16]byte{1, 2, 3}
	c.Put(k, 1)
	b.ReportAllocs()
	for b.Loop() {
		if _, ok := c.Get(k); !ok {
			b.Fatal("miss")
		}
	}
}
