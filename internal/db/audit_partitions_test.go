package db_test

import (
	"context"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/resolverd/resolverd/internal/db"
	"github.com/resolverd/resolverd/internal/pgtest"
)

func utcDay(t time.Time) time.Time { return t.UTC().Truncate(24 * time.Hour) }

// resolutionAt is a resolution's record at a given time.
func resolutionAt(at time.Time, chat uuid.UUID) db.AuditEvent {
	return db.AuditEvent{OccurredAt: at, Action: "ResolveModel", TokenID: uuid.New(), ChatID: chat, Outcome: db.OutcomeOK,
		Resolution: &db.ResolutionDetails{Purpose: "chat", RequestID: "req-" + at.Format(time.RFC3339Nano), Resolved: true,
			ConfigID: uuid.New(), ProviderID: uuid.New(), CredentialSource: "central", KeyID: uuid.New(), Fingerprint: "0123456789abcdef"}}
}

// insertAt writes one chained record per time, in order, and returns their ids.
func insertAt(t *testing.T, store *db.Store, pool *pgxpool.Pool, chat uuid.UUID, times ...time.Time) []int64 {
	t.Helper()
	ctx := context.Background()
	var ids []int64
	for _, at := range times {
		if err := store.InsertAuditEvents(ctx, []db.AuditEvent{resolutionAt(at, chat)}); err != nil {
			t.Fatal(err)
		}
		var id int64
		if err := pool.QueryRow(ctx, `SELECT max(id) FROM audit_events`).Scan(&id); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	return ids
}

// partitionOf names the partition that holds event id.
func partitionOf(t *testing.T, pool *pgxpool.Pool, id int64) string {
	t.Helper()
	var name string
	if err := pool.QueryRow(context.Background(), `SELECT tableoid::regclass::text FROM audit_events WHERE id = $1`, id).Scan(&name); err != nil {
		t.Fatalf("event %d: %v", id, err)
	}
	return name
}

func partitionNames(t *testing.T, store *db.Store) []string {
	t.Helper()
	parts, err := store.AuditPartitions(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, p := range parts {
		names = append(names, p.Name)
	}
	return names
}

// TestAuditPartitionsAreMadeAheadByReplicasAtOnce: replicas create the coming days' partitions at
// the same moment without an error, each day once.
func TestAuditPartitionsAreMadeAheadByReplicasAtOnce(t *testing.T) {
	ctx := context.Background()
	pool := pgtest.NewPool(t)
	start := utcDay(time.Now()).AddDate(0, 0, 30) // no partition yet
	const replicas = 4
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		created []string
		errs    []error
	)
	ready := make(chan struct{})
	for range replicas {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s := db.New(pool, pgtest.Keyring)
			<-ready
			names, err := s.EnsureAuditPartitions(ctx, start.Add(5*time.Hour), db.AuditPartitionsAhead)
			mu.Lock()
			defer mu.Unlock()
			created = append(created, names...)
			if err != nil {
				errs = append(errs, err)
			}
		}()
	}
	close(ready)
	wg.Wait()
	if len(errs) > 0 {
		t.Fatalf("replicas creating partitions at once failed: %v", errs)
	}
	var want []string
	for i := range db.AuditPartitionsAhead + 1 {
		want = append(want, db.AuditPartitionName(start.AddDate(0, 0, i)))
	}
	slices.Sort(created)
	if !slices.Equal(created, want) {
		t.Fatalf("created %v, want each of %v once", created, want)
	}
	store := db.New(pool, pgtest.Keyring)
	names := partitionNames(t, store)
	for _, w := range want {
		if !slices.Contains(names, w) {
			t.Errorf("partition %s missing from %v", w, names)
		}
	}
	// Idempotent: nothing left to do.
	if again, err := store.EnsureAuditPartitions(ctx, start, db.AuditPartitionsAhead); err != nil || len(again) != 0 {
		t.Fatalf("a second round created %v (%v)", again, err)
	}
	// Each new partition has the parent's indexes.
	var indexes int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM pg_indexes WHERE tablename = $1`, want[0]).Scan(&indexes); err != nil || indexes != 5 {
		t.Fatalf("partition %s has %d indexes (%v), want 5 (primary key, chat, token, admin action, occurred_at)", want[0], indexes, err)
	}
}

// TestARecordWithoutItsPartitionLandsInTheDefaultOne: a record whose day has no partition is
// taken by the default partition and listed; when maintenance then creates that day — ahead of
// time, or for the records found there — it moves them in the same transaction, ids and chains
// unchanged.
func TestARecordWithoutItsPartitionLandsInTheDefaultOne(t *testing.T) {
	ctx := context.Background()
	pool := pgtest.NewPool(t)
	store := db.New(pool, pgtest.Keyring)
	far := utcDay(time.Now()).AddDate(0, 0, 40)
	chat := uuid.New()
	ids := insertAt(t, store, pool, chat, far.Add(13*time.Hour), far.Add(37*time.Hour), far.AddDate(0, 0, 20).Add(time.Hour))
	for _, id := range ids {
		if p := partitionOf(t, pool, id); p != "audit_events_default" {
			t.Fatalf("event %d is in %s, want the default partition", id, p)
		}
	}
	listed := func() []int64 {
		t.Helper()
		events, err := store.ListAuditEvents(ctx, db.AuditFilter{ChatID: chat, Limit: 10})
		if err != nil {
			t.Fatal(err)
		}
		var got []int64
		for _, e := range events {
			got = append(got, e.ID)
		}
		slices.Sort(got)
		return got
	}
	if got := listed(); !slices.Equal(got, ids) {
		t.Fatalf("listed %v, want %v", got, ids)
	}

	// Three days before, the week ahead reaches the first two records' days.
	created, err := store.EnsureAuditPartitions(ctx, far.AddDate(0, 0, -3), db.AuditPartitionsAhead)
	if err != nil {
		t.Fatal(err)
	}
	for i, day := range []time.Time{far, far.AddDate(0, 0, 1), far.AddDate(0, 0, 20)} {
		name := db.AuditPartitionName(day)
		if !slices.Contains(created, name) {
			t.Errorf("created %v, not %s", created, name)
		}
		if p := partitionOf(t, pool, ids[i]); p != name {
			t.Errorf("event %d is in %s, want %s", ids[i], p, name)
		}
	}
	var left int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM audit_events_default`).Scan(&left); err != nil || left != 0 {
		t.Fatalf("%d records left in the default partition (%v)", left, err)
	}
	if got := listed(); !slices.Equal(got, ids) {
		t.Fatalf("after the move: listed %v, want %v", got, ids)
	}
	st, err := verifyTrail(t, pool)
	if err != nil || st.Events != int64(len(ids)) {
		t.Fatalf("verify after the move: %+v, %v", st, err)
	}
}

// TestReadersSeeEveryRecordWhileItMovesOutOfTheDefaultPartition: a reader running while
// maintenance moves records out of the default partition sees all of them, every time — never a
// moment where they have left the default partition for one its plan does not know (a verify
// would report them deleted).
func TestReadersSeeEveryRecordWhileItMovesOutOfTheDefaultPartition(t *testing.T) {
	ctx := context.Background()
	pool := pgtest.NewPool(t)
	store := db.New(pool, pgtest.Keyring)
	far := utcDay(time.Now()).AddDate(0, 0, 60)
	chat := uuid.New()
	var times []time.Time
	for d := range 12 {
		times = append(times, far.AddDate(0, 0, 2*d).Add(time.Hour), far.AddDate(0, 0, 2*d).Add(20*time.Hour))
	}
	insertAt(t, store, pool, chat, times...)

	stop := make(chan struct{})
	var reads, short int
	var readErr error
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-stop:
				return
			default:
			}
			var n int
			if err := pool.QueryRow(ctx, `SELECT count(*) FROM audit_events WHERE chat_id = $1`, chat).Scan(&n); err != nil {
				readErr = err
				return
			}
			reads++
			if n != len(times) {
				short++
			}
		}
	}()
	// One partition at a time, each moving its two records, while the reader reads.
	for d := range 12 {
		if _, err := store.EnsureAuditPartitions(ctx, far.AddDate(0, 0, 2*d), 0); err != nil {
			t.Fatal(err)
		}
	}
	close(stop)
	<-done
	if readErr != nil {
		t.Fatal(readErr)
	}
	if short > 0 {
		t.Fatalf("%d of %d reads during the moves missed records", short, reads)
	}
	var left int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM audit_events_default`).Scan(&left); err != nil || left != 0 {
		t.Fatalf("%d records left in the default partition (%v)", left, err)
	}
	t.Logf("%d reads during 12 moves, none short", reads)
}

// TestRetentionDropsOnlyWholeExpiredDays: retention drops the partitions whose every moment is
// older than the cutoff — never the day the cutoff falls in, never a row, never a rewrite — and not
// while the default partition holds older records; what remains verifies.
func TestRetentionDropsOnlyWholeExpiredDays(t *testing.T) {
	ctx := context.Background()
	pool := pgtest.NewPool(t)
	store := db.New(pool, pgtest.Keyring)
	today := utcDay(time.Now())
	if _, err := store.EnsureAuditPartitions(ctx, today.AddDate(0, 0, -5), 4); err != nil {
		t.Fatal(err)
	}
	chat := uuid.New()
	times := []time.Time{today.AddDate(0, 0, -10).Add(6 * time.Hour)} // a day without a partition
	for d := -5; d <= 0; d++ {
		times = append(times, today.AddDate(0, 0, d).Add(6*time.Hour))
	}
	ids := insertAt(t, store, pool, chat, times...)
	if p := partitionOf(t, pool, ids[0]); p != "audit_events_default" {
		t.Fatalf("the oldest record is in %s", p)
	}
	cutoff := today.AddDate(0, 0, -2).Add(12 * time.Hour)

	exp, err := store.DropAuditPartitionsBefore(ctx, cutoff)
	if err == nil || !strings.Contains(err.Error(), "default partition holds records older") || len(exp.Dropped) != 0 {
		t.Fatalf("with an expired record in the default partition: dropped %v, %v", exp.Dropped, err)
	}
	if _, err := store.EnsureAuditPartitions(ctx, today, db.AuditPartitionsAhead); err != nil {
		t.Fatal(err)
	}
	parts, err := store.AuditPartitions(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for _, p := range parts {
		if !p.Default && !p.To.After(cutoff) {
			want = append(want, p.Name)
		}
	}
	for _, d := range []int{-10, -5, -4, -3} {
		if name := db.AuditPartitionName(today.AddDate(0, 0, d)); !slices.Contains(want, name) {
			t.Fatalf("%s should expire; expiring %v", name, want)
		}
	}
	files := func() map[string]int64 {
		rows, err := pool.Query(ctx, `SELECT c.relname, c.relfilenode::bigint FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
WHERE i.inhparent = 'audit_events'::regclass`)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		out := map[string]int64{}
		for rows.Next() {
			var name string
			var node int64
			if err := rows.Scan(&name, &node); err != nil {
				t.Fatal(err)
			}
			out[name] = node
		}
		return out
	}
	before := files()

	exp, err = store.DropAuditPartitionsBefore(ctx, cutoff)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(exp.Dropped, want) || exp.Legacy {
		t.Fatalf("dropped %v (legacy %v), want %v", exp.Dropped, exp.Legacy, want)
	}
	var kept []int64
	rows, err := pool.Query(ctx, `SELECT id FROM audit_events WHERE chat_id = $1 ORDER BY id`, chat)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			t.Fatal(err)
		}
		kept = append(kept, id)
	}
	// The records of days -2, -1 and 0 remain: day -2's is older than the cutoff, but its day is not
	// over at the cutoff.
	if !slices.Equal(kept, ids[4:]) {
		t.Fatalf("kept %v, want %v", kept, ids[4:])
	}
	after := files()
	for name, node := range after {
		if before[name] != node {
			t.Errorf("partition %s was rewritten", name)
		}
	}
	for _, name := range want {
		if _, ok := after[name]; ok {
			t.Errorf("partition %s is still there", name)
		}
	}
	st, err := verifyTrail(t, pool)
	if err != nil || st.Events != 3 || st.Truncated != 1 {
		t.Fatalf("verify after retention: %+v, %v; want 3 events in a chain that lost its start", st, err)
	}
	if exp, err := store.DropAuditPartitionsBefore(ctx, cutoff); err != nil || len(exp.Dropped) != 0 {
		t.Fatalf("a second round dropped %v (%v)", exp.Dropped, err)
	}
}

// TestPartitionMaintenanceGivesUpOnABusyTrail: a reader holding the trail makes maintenance fail
// after its lock timeout — rather than queue writers behind it for as long as the reader runs — and
// the next round succeeds.
func TestPartitionMaintenanceGivesUpOnABusyTrail(t *testing.T) {
	ctx := context.Background()
	pool := pgtest.NewPool(t)
	store := db.New(pool, pgtest.Keyring)
	today := utcDay(time.Now())
	if _, err := store.EnsureAuditPartitions(ctx, today.AddDate(0, 0, -3), 1); err != nil {
		t.Fatal(err)
	}
	reader, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := reader.Exec(ctx, `SELECT count(*) FROM audit_events`); err != nil { // a long audit verify
		t.Fatal(err)
	}
	start := time.Now()
	exp, err := store.DropAuditPartitionsBefore(ctx, today.AddDate(0, 0, -1))
	if err == nil || len(exp.Dropped) != 0 {
		t.Fatalf("dropped %v while a reader held the trail (%v)", exp.Dropped, err)
	}
	if waited := time.Since(start); waited > 5*time.Second {
		t.Fatalf("waited %s for the lock", waited)
	}
	if err := reader.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	exp, err = store.DropAuditPartitionsBefore(ctx, today.AddDate(0, 0, -1))
	if err != nil || len(exp.Dropped) < 2 {
		t.Fatalf("after the reader: dropped %v (%v)", exp.Dropped, err)
	}
}
