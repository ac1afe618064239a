package main

import (
	"fmt"
	"io"
	"strings"
	"time"
)

type report struct {
	conditions                string
	health, resolve           []stats // c = concurrency, one per round
	health1, resolve1         []stats // c = 1
	cpuHealth, cpuResolve     []cpuTicks
	txResolutions             int
	txCount                   int64
	cold                      stats
	coldNote                  string
	propagation               []time.Duration // sorted
	resolveRR, resolveRR1     []stats         // round robin (pools.go), c = concurrency and c = 1
	reportPropagation         []time.Duration // sorted (pools.go)
	rssIdle, rssWarm, rssFull float64
	fillRPS                   float64
	plans                     []string
	audit                     *auditFigures
}

func ms(d time.Duration) string { return fmt.Sprintf("%.3f ms", float64(d)/float64(time.Millisecond)) }

func (r *report) print(w io.Writer) {
	fmt.Fprintf(w, "\nresolverd bench — %s\n\n", r.conditions)
	fmt.Fprintf(w, "%-8s %-22s %12s %12s %12s\n", "round", "phase", "calls/s", "p50", "p99")
	for i := range r.health {
		h, res := r.health[i], r.resolve[i]
		fmt.Fprintf(w, "%-8d %-22s %12.0f %12s %12s\n", i+1, "Health/Check c=32", h.rps(), ms(h.pct(50)), ms(h.pct(99)))
		fmt.Fprintf(w, "%-8d %-22s %12.0f %12s %12s\n", i+1, "ResolveModel c=32", res.rps(), ms(res.pct(50)), ms(res.pct(99)))
		fmt.Fprintf(w, "%-8d %-22s %12.0f %12s %12s\n", i+1, "Health/Check c=1", r.health1[i].rps(), ms(r.health1[i].pct(50)), ms(r.health1[i].pct(99)))
		fmt.Fprintf(w, "%-8d %-22s %12.0f %12s %12s\n", i+1, "ResolveModel c=1", r.resolve1[i].rps(), ms(r.resolve1[i].pct(50)), ms(r.resolve1[i].pct(99)))
		printRoundRobinRounds(w, r, i)
	}
	fmt.Fprintln(w, "\nCPU per call at c=32 (server / load generator / PostgreSQL):")
	us := func(d time.Duration) string { return fmt.Sprintf("%.1f µs", float64(d)/1e3) }
	for i := range r.cpuHealth {
		h, res := r.cpuHealth[i], r.cpuResolve[i]
		fmt.Fprintf(w, "  round %d  Health/Check %s / %s / %s    ResolveModel %s / %s / %s\n", i+1,
			us(h.server), us(h.client), us(h.postgres), us(res.server), us(res.client), us(res.postgres))
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "target                                             measured (each round)                   target")
	var thr, p50, p99 []string
	for i := range r.health {
		thr = append(thr, fmt.Sprintf("%.2f", r.resolve[i].rps()/r.health[i].rps()))
		p50 = append(p50, fmt.Sprintf("%+.3f ms", float64(r.resolve1[i].pct(50)-r.health1[i].pct(50))/1e6))
		p99 = append(p99, fmt.Sprintf("%.2f", float64(r.resolve[i].pct(99))/float64(r.health[i].pct(99))))
	}
	fmt.Fprintf(w, "%-50s %-39s %s\n", "ResolveModel / Health throughput, c=32", strings.Join(thr, ", "), ">= 0.8")
	fmt.Fprintf(w, "%-50s %-39s %s\n", "ResolveModel p50 - Health p50, c=1", strings.Join(p50, ", "), "<= +0.100 ms")
	fmt.Fprintf(w, "%-50s %-39s %s\n", "ResolveModel p99 / Health p99, c=32", strings.Join(p99, ", "), "<= 1.5")
	fmt.Fprintf(w, "%-50s %-39s %s\n", "server CPU: warm ResolveModel / Health, c=32", cpuRatios(r.cpuHealth, r.cpuResolve), "< 1.3")
	fmt.Fprintf(w, "%-50s %-39s %s\n", "database transactions per warm resolution",
		fmt.Sprintf("%.4f (%d tx / %d resolutions)", float64(r.txCount)/float64(r.txResolutions), r.txCount, r.txResolutions), "<= 0.05")
	if n := len(r.propagation); n > 0 {
		fmt.Fprintf(w, "%-50s %-39s %s\n", fmt.Sprintf("psql change seen by all replicas (%d trials)", n),
			fmt.Sprintf("worst %s, median %s", ms(r.propagation[n-1]), ms(r.propagation[n/2])), "<= 1000 ms worst")
	}
	reportPoolsCost(w, r)
	reportIdentityCost(w)
	fmt.Fprintf(w, "\ncold path (a chat not in memory: one batched round trip), c=1, %d calls: p50 %s, p99 %s %s\n",
		r.cold.calls, ms(r.cold.pct(50)), ms(r.cold.pct(99)), r.coldNote)
	fmt.Fprintf(w, "resident memory of the serving replica: %.0f MiB after start, %.0f MiB warm", r.rssIdle, r.rssWarm)
	if r.rssFull > 0 {
		fmt.Fprintf(w, ", %.0f MiB after resolving 100,000 distinct chats (%.0f calls/s while filling)", r.rssFull, r.fillRPS)
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "\nquery plans of the cold path's batch:")
	for _, p := range r.plans {
		fmt.Fprintln(w, "  "+p)
	}
	reportSealingCost(w)
	reportChainCost(w)
	reportAudit(w, r.audit)
}
