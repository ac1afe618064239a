// Command resolverd-bench is `make bench`: it starts a private PostgreSQL, seeds it (a working set
// and, with -big, 1,000 providers, 10,000 model configs, 100,000 chats and 1,000,000 user keys),
// starts resolverd serve processes, drives them with a Go load generator, and prints throughput,
// latency (also against a round-robin provider's key pool), database transactions per warm
// resolution, cold-path latency, the propagation time of a psql change and of a worker's key report
// across three replicas, resident memory and the cold path's query plans; then the audit trail at
// volume (audit.go; -phase audit runs it alone): a 20,000,000-record trail over 30 daily
// partitions, the audit writer's records per second in each mode, dropping a day, and
// ListAuditEvents by chat through the server.
//
// Figures, not verdicts: it reports the targets of issue 5 beside what it measured and exits 0
// whatever they are (a failure to run is a non-zero exit).
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"syscall"
	"time"

	"github.com/resolverd/resolverd/internal/keyring"
	"github.com/resolverd/resolverd/internal/pgcluster"
)

type options struct {
	duration    time.Duration
	concurrency int
	big         bool
	replicas    int
	trials      int
	cacheMax    int
	profile     string
	soak        time.Duration
	rate        int
	// phase is "all", or "audit" for the audit phase alone (audit.go).
	phase                   string
	auditRecords, auditDays int
}

func main() {
	var o options
	flag.DurationVar(&o.duration, "duration", 10*time.Second, "length of each throughput phase")
	flag.IntVar(&o.concurrency, "concurrency", 32, "concurrent callers in the throughput phases")
	flag.BoolVar(&o.big, "big", true, "seed 1,000 providers, 10,000 configs, 100,000 chats and 1,000,000 user keys")
	flag.IntVar(&o.replicas, "replicas", 3, "resolverd processes for the propagation measurement")
	flag.IntVar(&o.trials, "trials", 20, "propagation trials")
	flag.IntVar(&o.cacheMax, "cache-max-entries", 100_000, "the servers' --cache-max-entries")
	flag.DurationVar(&o.soak, "soak", 0, "instead of the benchmark, hold -rate resolutions per second for this long (make soak)")
	flag.IntVar(&o.rate, "rate", 2000, "the soak's resolutions per second")
	flag.StringVar(&o.phase, "phase", "all", "all, or audit: only the audit trail at volume (seeded trail, writer, retention, ListAuditEvents, sizes)")
	flag.IntVar(&o.auditRecords, "audit-records", 20_000_000, "records seeded into the audit trail for the audit phase")
	flag.IntVar(&o.auditDays, "audit-days", 30, "daily partitions the audit phase seeds them over")
	flag.StringVar(&o.profile, "profile", "", "write a CPU profile of the serving replica during an extra ResolveModel phase to this file")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, o, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "resolverd-bench:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, o options, out io.Writer) error {
	work, err := os.MkdirTemp("", "resolverd-bench-*")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	if err := os.Chmod(work, 0o711); err != nil {
		return err
	}
	logf := func(format string, args ...any) { fmt.Fprintf(os.Stderr, "bench: "+format+"\n", args...) }

	logf("building resolverd")
	bin := filepath.Join(work, "resolverd")
	if err := buildResolverd(ctx, bin); err != nil {
		return err
	}
	logf("starting PostgreSQL")
	cluster, err := pgcluster.Start(ctx, pgcluster.Options{DataDir: filepath.Join(work, "pg"),
		ExtraSettings: map[string]string{"max_connections": "200", "shared_buffers": "256MB"}})
	if err != nil {
		return err
	}
	defer cluster.Stop()
	url, err := createDatabase(ctx, cluster)
	if err != nil {
		return err
	}
	encKey := keyring.Generate()
	kr, err := keyring.Parse(encKey)
	if err != nil {
		return err
	}
	if err := migrate(ctx, bin, url); err != nil {
		return err
	}
	switch o.phase {
	case "all":
	case "audit":
		return runAuditOnly(ctx, o, bin, url, encKey, kr, work, out, logf)
	default:
		return fmt.Errorf("-phase %q: use all or audit", o.phase)
	}
	logf("seeding")
	seedStart := time.Now()
	set, err := seed(ctx, url, kr, o.big, logf)
	if err != nil {
		return err
	}
	logf("seeded in %s", time.Since(seedStart).Round(time.Second))

	r := &report{conditions: conditions(o)}
	servers, err := startReplicas(ctx, bin, url, encKey, o, work)
	defer stopAll(servers)
	if err != nil {
		return err
	}
	if o.soak > 0 {
		return soak(ctx, o, url, set, servers, out, logf)
	}
	if err := measure(ctx, o, url, set, servers, r, logf); err != nil {
		return err
	}
	if r.audit, err = runAudit(ctx, o, url, kr, servers[0], logf); err != nil {
		return err
	}
	r.print(out)
	return nil
}

// runAuditOnly is -phase audit: one replica over a database without the resolution data set.
func runAuditOnly(ctx context.Context, o options, bin, url, encKey string, kr *keyring.Keyring, work string, out io.Writer, logf func(string, ...any)) error {
	o.replicas, o.profile = 1, ""
	servers, err := startReplicas(ctx, bin, url, encKey, o, work)
	defer stopAll(servers)
	if err != nil {
		return err
	}
	a, err := runAudit(ctx, o, url, kr, servers[0], logf)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "\nresolverd bench — %s\n", conditions(o))
	reportAudit(out, a)
	return nil
}

func conditions(o options) string {
	host, _ := os.Hostname()
	return fmt.Sprintf("%s, %d CPUs (GOMAXPROCS %d), %s; client and servers on the same machine; PostgreSQL %s with fsync off; "+
		"%s per throughput phase; cache bound %d entries per large kind",
		host, runtime.NumCPU(), runtime.GOMAXPROCS(0), runtime.Version(), pgVersion(), o.duration, o.cacheMax)
}

func pgVersion() string {
	if b, err := pgcluster.FindBinaries(); err == nil {
		return b.Version
	}
	return "?"
}
