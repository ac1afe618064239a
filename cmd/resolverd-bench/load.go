package main

import (
	"context"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
)

// stats is one phase's outcome.
type stats struct {
	calls, errors int
	elapsed       time.Duration
	lat           []time.Duration // sorted
	firstErr      error
}

func (s stats) rps() float64 { return float64(s.calls) / s.elapsed.Seconds() }

func (s stats) pct(p float64) time.Duration {
	if len(s.lat) == 0 {
		return 0
	}
	i := int(p / 100 * float64(len(s.lat)-1))
	return s.lat[i]
}

// drive runs c callers for d (or n calls in all when n > 0), spreading them over conns.
// call gets the caller's connection and a call number.
func drive(ctx context.Context, conns []*grpc.ClientConn, c int, d time.Duration, n int,
	call func(ctx context.Context, conn *grpc.ClientConn, i int) error) stats {
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		all   []time.Duration
		errs  atomic.Int64
		first atomic.Pointer[error]
		next  atomic.Int64
	)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	start := time.Now()
	deadline := start.Add(d)
	for w := range c {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			conn := conns[w%len(conns)]
			lat := make([]time.Duration, 0, 1<<16)
			for {
				i := int(next.Add(1)) - 1
				if (n > 0 && i >= n) || (n == 0 && time.Now().After(deadline)) || ctx.Err() != nil {
					break
				}
				t := time.Now()
				err := call(ctx, conn, i)
				lat = append(lat, time.Since(t))
				if err != nil {
					errs.Add(1)
					first.CompareAndSwap(nil, &err)
				}
			}
			mu.Lock()
			all = append(all, lat...)
			mu.Unlock()
		}(w)
	}
	wg.Wait()
	s := stats{calls: len(all), errors: int(errs.Load()), elapsed: time.Since(start), lat: all}
	slices.Sort(s.lat)
	if e := first.Load(); e != nil {
		s.firstErr = *e
	}
	return s
}
