package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	resolverv1 "github.com/resolverd/resolverd/proto/resolver/v1"
)

// soak holds a steady request rate against one replica for o.soak and reports, minute by minute,
// throughput, errors, latency and resident memory.
func soak(ctx context.Context, o options, url string, set *seedSet, servers []*replica, out io.Writer, logf func(string, ...any)) error {
	auth, conns, err := workerClient(ctx, url, servers[0], "soak-worker")
	if err != nil {
		return err
	}
	defer closeAll(conns)
	chats := set.warmChats
	if len(set.coldChats) > 0 {
		chats = append(slices.Clone(chats), set.coldChats[:min(len(set.coldChats), 20_000)]...)
	}
	pid := servers[0].cmd.Process.Pid
	logf("soak: %d resolutions/s for %s over %d chats", o.rate, o.soak, len(chats))

	type minute struct {
		calls, errs int
		lat         []time.Duration
		rss         float64
	}
	var (
		mu      sync.Mutex
		cur     = &minute{}
		minutes []*minute
		first   atomic.Pointer[error]
		wg      sync.WaitGroup
	)
	// Pace by the clock, not by ticks (a ticker drops ticks when the loop is late): every 5ms,
	// start as many calls as the rate owes since the start.
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	begin := time.Now()
	end := begin.Add(o.soak)
	nextMinute := begin.Add(time.Minute)
	sem := make(chan struct{}, 256) // bounds calls in flight; a full semaphore means we fell behind
	sent, behind := 0, 0
	for now := range tick.C {
		if now.After(end) || ctx.Err() != nil {
			break
		}
		if now.After(nextMinute) {
			rss, _ := rssMiB(pid)
			mu.Lock()
			cur.rss = rss
			minutes = append(minutes, cur)
			logf("soak: minute %d: %d calls, %d errors, RSS %.0f MiB", len(minutes), cur.calls, cur.errs, rss)
			cur = &minute{}
			mu.Unlock()
			nextMinute = nextMinute.Add(time.Minute)
		}
		for due := int(now.Sub(begin).Seconds() * float64(o.rate)); sent < due; sent++ {
			select {
			case sem <- struct{}{}:
			default:
				behind++
				continue
			}
			chat, conn := chats[sent%len(chats)], conns[sent%len(conns)]
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer func() { <-sem }()
				start := time.Now()
				_, err := resolverv1.NewResolverServiceClient(conn).ResolveModel(auth,
					&resolverv1.ResolveModelRequest{ChatId: chat.String(), Purpose: resolverv1.Purpose_PURPOSE_CHAT})
				d := time.Since(start)
				mu.Lock()
				cur.calls++
				cur.lat = append(cur.lat, d)
				if err != nil {
					cur.errs++
					first.CompareAndSwap(nil, &err)
				}
				mu.Unlock()
			}()
		}
	}
	wg.Wait()
	rss, _ := rssMiB(pid)
	mu.Lock()
	if cur.calls > 0 {
		cur.rss = rss
		minutes = append(minutes, cur)
	}
	mu.Unlock()

	fmt.Fprintf(out, "\nresolverd soak — %s, target %d resolutions/s for %s, one replica, %d chats\n\n", conditions(o), o.rate, o.soak, len(chats))
	fmt.Fprintf(out, "%-7s %10s %8s %8s %10s %10s %10s\n", "minute", "calls", "calls/s", "errors", "p50", "p99", "RSS")
	var total, errs int
	for n, m := range minutes {
		slices.Sort(m.lat)
		p := func(q float64) time.Duration { return m.lat[int(q*float64(len(m.lat)-1))] }
		fmt.Fprintf(out, "%-7d %10d %8.0f %8d %10s %10s %8.0f MiB\n", n+1, m.calls, float64(m.calls)/60, m.errs, ms(p(.5)), ms(p(.99)), m.rss)
		total += m.calls
		errs += m.errs
	}
	fmt.Fprintf(out, "\ntotal %d calls, %d errors, %d calls not started because 256 were already in flight\n", total, errs, behind)
	if len(minutes) > 1 {
		fmt.Fprintf(out, "resident memory: %.0f MiB after the first minute, %.0f MiB at the end\n", minutes[0].rss, minutes[len(minutes)-1].rss)
	}
	if e := first.Load(); e != nil {
		fmt.Fprintf(out, "first error: %v\n", *e)
	}
	reportLog(out, servers[0])
	return nil
}

// reportLog prints how many warnings and errors the replica logged, and the first few.
func reportLog(out io.Writer, r *replica) {
	b, err := os.ReadFile(r.log.Name())
	if err != nil {
		return
	}
	var lines []string
	for _, l := range strings.Split(string(b), "\n") {
		if strings.Contains(l, `"level":"WARN"`) || strings.Contains(l, `"level":"ERROR"`) {
			lines = append(lines, l)
		}
	}
	fmt.Fprintf(out, "the replica logged %d warnings and errors\n", len(lines))
	for _, l := range lines[:min(len(lines), 10)] {
		fmt.Fprintln(out, "  "+l)
	}
}
