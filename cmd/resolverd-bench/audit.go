package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"google.golang.org/grpc/metadata"

	"github.com/resolverd/resolverd/internal/audit"
	"github.com/resolverd/resolverd/internal/db"
	"github.com/resolverd/resolverd/internal/dbauthz"
	"github.com/resolverd/resolverd/internal/keyring"
	resolverv1 "github.com/resolverd/resolverd/proto/resolver/v1"
)

// The audit phase (make bench BENCHFLAGS="-phase audit" runs it alone): the audit trail at
// production volume — a seeded trail of -audit-records records over -audit-days daily
// partitions, the records per second the real audit writer takes, dropping a day, ListAuditEvents
// by chat through the real server, and the table's size per million records in each mode.

// auditFigures is what the audit phase measured.
type auditFigures struct {
	seed *seededTrail
	// each: the writer at full speed; summary: paced at summaryRate over summaryKeys distinct
	// resolutions (summaryRepeats of each per window); summaryMax: at full speed.
	each, summary, summaryMax writerRun
	drop                      time.Duration
	dropRows                  int64
	dropPartition             string
	dropRefused               int64 // records the writer could not take meanwhile
	listChat, listNext        stats
	listRows                  int
	listPlans                 []string
	listQuery                 stats   // the query alone
	seededMiB, seededRows     float64 // a seeded day's partition
}

// writerRun is one run of the audit writer.
type writerRun struct {
	resolutions, records int64
	refused              int64 // Record refused: the buffer was full
	elapsed              time.Duration
	mib                  float64 // its partition's table and indexes
}

func (w writerRun) perSecond(n int64) float64 { return float64(n) / w.elapsed.Seconds() }

// mibPerMillion is the size per million resolutions.
func (w writerRun) mibPerMillion() float64 { return w.mib / float64(w.resolutions) * 1e6 }

const (
	// Summary mode, scaled: 20,000 resolutions/s over 5,000 distinct ones with a 1 s window
	// repeats each 4 times per window — as 2,000 resolutions/s from 5,000 chats, each resolving
	// every 2.5 s, do with the default 10 s window.
	summaryRate    = 20_000
	summaryKeys    = 5_000
	summaryWindow  = time.Second
	summaryRecords = 1_000_000
	summaryRepeats = summaryRate * int(summaryWindow/time.Second) / summaryKeys
	writerFullFor  = 15 * time.Second
	listCalls      = 300
)

func runAudit(ctx context.Context, o options, url string, kr *keyring.Keyring, r *replica, logf func(string, ...any)) (*auditFigures, error) {
	pool, err := db.Connect(ctx, url)
	if err != nil {
		return nil, err
	}
	defer pool.Close()
	a := &auditFigures{}
	logf("audit phase: seeding %d records over %d daily partitions", o.auditRecords, o.auditDays)
	if a.seed, err = seedAuditTrail(ctx, pool, kr, o.auditRecords, o.auditDays, logf); err != nil {
		return nil, err
	}
	logf("audit phase: seeded in %s, VACUUM (ANALYZE) %s", a.seed.elapsed.Round(time.Second), a.seed.vacuum.Round(time.Second))
	if a.seededMiB, a.seededRows, err = partitionSize(ctx, pool, db.AuditPartitionName(a.seed.first.AddDate(0, 0, 1))); err != nil {
		return nil, err
	}

	today := time.Now().UTC().Truncate(24 * time.Hour)
	pop := a.seed.pop
	logf("audit phase: the writer at full speed for %s (each)", writerFullFor)
	a.each, err = runWriter(ctx, pool, kr, audit.Options{}, today.AddDate(0, 0, 2), writerFullFor, 0, 0, pop)
	if err != nil {
		return nil, err
	}
	logf("audit phase: summary mode, %d resolutions at %d/s over %d distinct ones", summaryRecords, summaryRate, summaryKeys)
	a.summary, err = runWriter(ctx, pool, kr, audit.Options{Summarise: true, SummaryWindow: summaryWindow},
		today.AddDate(0, 0, 3), 0, summaryRate, summaryRecords, pop)
	if err != nil {
		return nil, err
	}
	logf("audit phase: summary mode at full speed for %s", writerFullFor)
	a.summaryMax, err = runWriter(ctx, pool, kr, audit.Options{Summarise: true, SummaryWindow: summaryWindow},
		today.AddDate(0, 0, 4), writerFullFor, 0, 0, pop)
	if err != nil {
		return nil, err
	}

	if err := dropOldestDay(ctx, pool, kr, a, pop, logf); err != nil {
		return nil, err
	}
	// What autovacuum would do after the writer's millions of records: its ANALYZE of a partition
	// invalidates the plans over it, which every connection then makes again.
	logf("audit phase: VACUUM (ANALYZE) after the writer runs")
	if _, err := pool.Exec(ctx, "VACUUM (ANALYZE) audit_events"); err != nil {
		return nil, err
	}
	// Other chats for each, so that neither finds the other's pages in memory.
	if a.listQuery, err = queryByChat(ctx, pool, kr, a.seed.pop); err != nil {
		return nil, err
	}
	if err := listByChat(ctx, r, a, logf); err != nil {
		return nil, err
	}
	if a.listPlans, err = explainListByChat(ctx, pool, a.seed.pop.chats[1]); err != nil {
		return nil, err
	}
	return a, nil
}

// queryByChat times ListAuditEvents' query alone, through db.Store in this process (pgx's
// prepared statements, as the server uses them), for as many other chats as listByChat.
func queryByChat(ctx context.Context, pool *pgxpool.Pool, kr *keyring.Keyring, pop *auditPopulation) (stats, error) {
	store := db.New(pool, kr)
	for i := range 100 { // warm the pool's connections, as listByChat does the server's
		if _, err := store.ListAuditEvents(ctx, db.AuditFilter{ChatID: pop.chats[(i*7919+2)%len(pop.chats)], Limit: 51}); err != nil {
			return stats{}, err
		}
	}
	var lat []time.Duration
	for i := range listCalls {
		t := time.Now()
		if _, err := store.ListAuditEvents(ctx, db.AuditFilter{ChatID: pop.chats[(i*7919+1)%len(pop.chats)], Limit: 51}); err != nil {
			return stats{}, err
		}
		lat = append(lat, time.Since(t))
	}
	slices.Sort(lat)
	return stats{calls: len(lat), lat: lat}, nil
}

// explainListByChat is what PostgreSQL says of ListAuditEvents' statement for one chat (as
// internal/db builds it), planned for that chat and as the generic plan a prepared statement
// settles on: the planning and execution times and the buffers each touched.
func explainListByChat(ctx context.Context, pool *pgxpool.Pool, chat uuid.UUID) ([]string, error) {
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return nil, err
	}
	defer conn.Release()
	const q = `SELECT id, occurred_at, action, token_id, chat_id, outcome, purpose, request_id, requested_model_config_id,
  model_config_id, provider_id, credential_source, key_id, fingerprint, fallback, fallback_reason, details, subject, count,
  first_at, last_at, chain_id, chain_seq, mac, prev_mac, mac_key_id FROM audit_events WHERE true AND chat_id = $1 ORDER BY id DESC LIMIT $2`
	var out []string
	for _, mode := range []string{"force_custom_plan", "force_generic_plan"} {
		if _, err := conn.Exec(ctx, `SET plan_cache_mode = `+mode); err != nil {
			return nil, err
		}
		rows, err := conn.Query(ctx, `EXPLAIN (ANALYZE, BUFFERS, SUMMARY) `+q, chat, 51)
		if err != nil {
			return nil, err
		}
		lines, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			return nil, err
		}
		var keep []string
		for i, l := range lines {
			t := strings.TrimSpace(l)
			if i == 0 || strings.HasPrefix(t, "Buffers:") && len(keep) == 1 || strings.HasPrefix(t, "Planning Time") || strings.HasPrefix(t, "Execution Time") {
				keep = append(keep, t)
			}
		}
		out = append(out, mode+": "+strings.Join(keep, "; "))
	}
	_, err = conn.Exec(ctx, `RESET plan_cache_mode`)
	return out, err
}

// partitionSize is a partition's table and indexes in MiB, and its rows.
func partitionSize(ctx context.Context, pool *pgxpool.Pool, name string) (mib, rows float64, err error) {
	var bytes int64
	var n int64
	err = pool.QueryRow(ctx, `SELECT pg_total_relation_size($1::regclass), (SELECT count(*) FROM `+quoteIdent(name)+`)`, name).Scan(&bytes, &n)
	return float64(bytes) / (1 << 20), float64(n), err
}

func quoteIdent(s string) string { return `"` + s + `"` }

func quietLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// countingSink counts what the store took.
type countingSink struct {
	sink                 audit.Sink
	records, resolutions atomic.Int64
}

func (c *countingSink) InsertAuditEvents(ctx context.Context, events []db.AuditEvent) error {
	if err := c.sink.InsertAuditEvents(ctx, events); err != nil {
		return err
	}
	c.records.Add(int64(len(events)))
	var n int64
	for _, e := range events {
		n += int64(max(e.Count, 1))
	}
	c.resolutions.Add(n)
	return nil
}

// runWriter feeds a real audit writer (over the scope-checked store, as the server does) with
// resolutions of day, for d at full speed, or n of them at rate per second; summary-mode streams
// cycle through summaryKeys distinct resolutions. It reports what was written once the writer
// has flushed everything, and the size of day's partition.
func runWriter(ctx context.Context, pool *pgxpool.Pool, kr *keyring.Keyring, opts audit.Options, day time.Time, d time.Duration, rate, n int, pop *auditPopulation) (writerRun, error) {
	sink := &countingSink{sink: dbauthz.New(db.New(pool, kr))}
	w := audit.NewWriter(sink, quietLog(), opts)
	w.Start()
	r := rand.New(rand.NewPCG(3, 4))
	next := func(i int) db.AuditEvent {
		at := day.Add(time.Duration(i) * time.Microsecond)
		if opts.Summarise {
			k := i % summaryKeys
			return pop.resolution(k%auditChats, k/auditChats, at, requestID(r))
		}
		return pop.resolution(r.IntN(auditChats), r.IntN(64), at, requestID(r))
	}
	start := time.Now()
	var refused int64
	for i := 0; ; {
		if n > 0 && i >= n || d > 0 && time.Since(start) >= d || ctx.Err() != nil {
			break
		}
		if rate > 0 {
			if ahead := time.Duration(i)*time.Second/time.Duration(rate) - time.Since(start); ahead > 0 {
				time.Sleep(ahead)
			}
		}
		if err := w.Record(next(i)); err != nil {
			refused++ // the buffer is full: what a resolution would be refused for; try again
			time.Sleep(50 * time.Microsecond)
			continue
		}
		i++
	}
	w.Close(context.WithoutCancel(ctx))
	run := writerRun{resolutions: sink.resolutions.Load(), records: sink.records.Load(), refused: refused, elapsed: time.Since(start)}
	var err error
	run.mib, _, err = partitionSize(context.WithoutCancel(ctx), pool, db.AuditPartitionName(day))
	return run, err
}

// dropOldestDay times retention dropping the oldest seeded day — through the store, as the
// server's retention does it — while the writer takes 2,000 resolutions a second.
func dropOldestDay(ctx context.Context, pool *pgxpool.Pool, kr *keyring.Keyring, a *auditFigures, pop *auditPopulation, logf func(string, ...any)) error {
	a.dropPartition = db.AuditPartitionName(a.seed.first)
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM `+quoteIdent(a.dropPartition)).Scan(&a.dropRows); err != nil {
		return err
	}
	bg, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	var bgRun writerRun
	go func() {
		var err error
		bgRun, err = runWriter(bg, pool, kr, audit.Options{}, time.Now().UTC().Truncate(24*time.Hour).AddDate(0, 0, 5), 0, 2000, 1<<30, pop)
		done <- err
	}()
	time.Sleep(2 * time.Second)
	logf("audit phase: dropping %s (%d records) under 2,000 resolutions/s", a.dropPartition, a.dropRows)
	start := time.Now()
	exp, err := db.New(pool, kr).DropAuditPartitionsBefore(ctx, a.seed.first.AddDate(0, 0, 1))
	a.drop = time.Since(start)
	time.Sleep(time.Second)
	stop()
	if werr := <-done; werr != nil && err == nil {
		err = werr
	}
	a.dropRefused = bgRun.refused
	if err == nil && !slices.Equal(exp.Dropped, []string{a.dropPartition}) {
		err = fmt.Errorf("retention dropped %v, want %s", exp.Dropped, a.dropPartition)
	}
	return err
}

// listByChat calls ListAuditEvents by chat (a page of 50, then the next page) through the real
// server, one call at a time, for chats spread over the trail.
func listByChat(ctx context.Context, r *replica, a *auditFigures, logf func(string, ...any)) error {
	token, err := createToken(ctx, r, "bench-audit", "audit:read")
	if err != nil {
		return err
	}
	conns, err := dial(r.addr, 1)
	if err != nil {
		return err
	}
	defer closeAll(conns)
	auth := metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+token)
	client := resolverv1.NewAdminServiceClient(conns[0])
	chats := a.seed.pop.chats
	list := func(i int, pageToken string) (*resolverv1.ListAuditEventsResponse, error) {
		return client.ListAuditEvents(auth, &resolverv1.ListAuditEventsRequest{ChatId: chats[(i*7919)%len(chats)].String(), PageSize: 50, PageToken: pageToken})
	}
	logf("audit phase: ListAuditEvents by chat, %d calls", listCalls)
	// Warm every connection of the server's pool: PostgreSQL plans a prepared statement afresh
	// for each of a connection's first five runs (3–10 ms over 40 partitions) before it keeps
	// the generic plan, and a connection's first look at the partitions loads their catalog
	// entries.
	for i := range 100 {
		if _, err := list(i+listCalls, ""); err != nil {
			return err
		}
	}
	var first, next []time.Duration
	start := time.Now()
	for i := range listCalls {
		t := time.Now()
		resp, err := list(i, "")
		first = append(first, time.Since(t))
		if err != nil {
			return err
		}
		a.listRows += len(resp.GetEvents())
		if resp.GetNextPageToken() == "" {
			continue
		}
		t = time.Now()
		if _, err := list(i, resp.GetNextPageToken()); err != nil {
			return err
		}
		next = append(next, time.Since(t))
	}
	slices.Sort(first)
	slices.Sort(next)
	a.listChat = stats{calls: len(first), elapsed: time.Since(start), lat: first}
	a.listNext = stats{calls: len(next), lat: next}
	return nil
}

func reportAudit(w io.Writer, a *auditFigures) {
	if a == nil {
		return
	}
	s := a.seed
	fmt.Fprintf(w, "\naudit trail at volume (-phase audit): %d records seeded over %d daily partitions in %s (%.0f records/s, two writers, "+
		"chained COPY through db.Store), then VACUUM (ANALYZE) %s\n", s.records, s.days, s.elapsed.Round(time.Second),
		float64(s.records)/s.elapsed.Seconds(), s.vacuum.Round(time.Second))
	fmt.Fprintf(w, "%-58s %-34s %s\n", "measure", "measured", "target")
	fmt.Fprintf(w, "%-58s %-34s %s\n", "audit writer, each mode, full speed (records/s)",
		fmt.Sprintf("%.0f (%d records in %s)", a.each.perSecond(a.each.records), a.each.records, a.each.elapsed.Round(time.Millisecond)), "≥ 2,000")
	fmt.Fprintf(w, "%-58s %-34s %s\n", fmt.Sprintf("summary mode, paced %d/s, %d× per window: resolutions/s", summaryRate, summaryRepeats),
		fmt.Sprintf("%.0f taken, %.0f records/s written", a.summary.perSecond(a.summary.resolutions), a.summary.perSecond(a.summary.records)), "")
	fmt.Fprintf(w, "%-58s %-34s %s\n", "summary mode, full speed: resolutions/s",
		fmt.Sprintf("%.0f taken, %.0f records/s written", a.summaryMax.perSecond(a.summaryMax.resolutions), a.summaryMax.perSecond(a.summaryMax.records)), "")
	fmt.Fprintf(w, "%-58s %-34s %s\n", fmt.Sprintf("retention: drop one day (%d records) under 2,000/s", a.dropRows),
		fmt.Sprintf("%s (%d records refused meanwhile)", ms(a.drop), a.dropRefused), "< 1000 ms, no rewrite")
	fmt.Fprintf(w, "%-58s %-34s %s\n", fmt.Sprintf("ListAuditEvents by chat, page of 50, c=1, %d calls", a.listChat.calls),
		fmt.Sprintf("p50 %s, p99 %s", ms(a.listChat.pct(50)), ms(a.listChat.pct(99))), "p50 < 5 ms")
	fmt.Fprintf(w, "%-58s %-34s %s\n", fmt.Sprintf("  its next page (%d calls)", a.listNext.calls),
		fmt.Sprintf("p50 %s, p99 %s", ms(a.listNext.pct(50)), ms(a.listNext.pct(99))), "")
	fmt.Fprintf(w, "%-58s %-34s %s\n", "  the query alone (db.Store in the bench process)",
		fmt.Sprintf("p50 %s, p99 %s", ms(a.listQuery.pct(50)), ms(a.listQuery.pct(99))), "")
	for _, p := range a.listPlans {
		fmt.Fprintf(w, "    %s\n", p)
	}
	fmt.Fprintf(w, "%-58s %-34s %s\n", "table + indexes per million resolutions, each mode",
		fmt.Sprintf("%.0f MiB (seeded day: %.0f MiB)", a.each.mibPerMillion(), a.seededMiB/a.seededRows*1e6), "")
	fmt.Fprintf(w, "%-58s %-34s %s\n", fmt.Sprintf("  summary mode, each resolution %d× per window", summaryRepeats),
		fmt.Sprintf("%.0f MiB (%d records for %d)", a.summary.mibPerMillion(), a.summary.records, a.summary.resolutions), "")
}
