package db_test

import (
	"context"
	"io/fs"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/pressly/goose/v3"

	"github.com/resolverd/resolverd/internal/db"
	"github.com/resolverd/resolverd/internal/pgtest"
	"github.com/resolverd/resolverd/migrations"
)

// versionBelow is the newest migration before v (numbers may have gaps).
func versionBelow(t *testing.T, v int64) int64 {
	t.Helper()
	entries, err := fs.ReadDir(migrations.FS, ".")
	if err != nil {
		t.Fatal(err)
	}
	below := int64(db.CutoverVersion)
	for _, e := range entries {
		if n, err := goose.NumericComponent(e.Name()); err == nil && n < v && n > below {
			below = n
		}
	}
	return below
}

// trailRows renders every audit row but the summary columns (which the older table lacks), by id.
func trailRows(t *testing.T, pool *pgxpool.Pool) []string {
	t.Helper()
	rows, err := pool.Query(context.Background(), `SELECT (to_jsonb(a) - 'count' - 'first_at' - 'last_at')::text FROM audit_events a ORDER BY id`)
	if err != nil {
		t.Fatal(err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func relkind(t *testing.T, pool *pgxpool.Pool, table string) string {
	t.Helper()
	var k string
	if err := pool.QueryRow(context.Background(), `SELECT relkind::text FROM pg_class WHERE oid = to_regclass($1)`, table).Scan(&k); err != nil {
		return ""
	}
	return k
}

// TestPartitioningKeepsEveryRowAndChain: up → down → up keeps every record, its id and its chain
// columns; the trail verifies after each step; going up over a trail that has rows attaches the
// old table as the partition audit_events_legacy rather than copying it; new records continue
// the ids.
func TestPartitioningKeepsEveryRowAndChain(t *testing.T) {
	ctx := context.Background()
	pool := pgtest.Connect(t, pgtest.NewDatabase(t))
	m := migrator(t, pool)
	below := versionBelow(t, db.PartitionedAuditVersion)
	store := db.New(pool, pgtest.Keyring)
	now := time.Now()
	insertAt(t, store, pool, uuid.New(), now.Add(-50*time.Hour), now.Add(-26*time.Hour), now.Add(-time.Hour), now)
	if err := store.InsertAuditEvents(ctx, auditSamples()[:5]); err != nil {
		t.Fatal(err)
	}
	if _, err := store.PutUser(ctx, uuid.New(), "partitioned"); err != nil {
		t.Fatal(err)
	}
	verified := func(step string, want int) {
		t.Helper()
		st, err := verifyTrail(t, pool)
		if err != nil || st.Events != int64(want) {
			t.Fatalf("%s: verified %+v, %v; want %d events", step, st, err, want)
		}
	}
	rows := trailRows(t, pool)
	verified("before", len(rows))

	if _, err := m.DownTo(ctx, below); err != nil {
		t.Fatal(err)
	}
	if k := relkind(t, pool, "audit_events"); k != "r" {
		t.Fatalf("after down, audit_events is of kind %q, want a plain table", k)
	}
	if got := trailRows(t, pool); !slices.Equal(got, rows) {
		t.Fatalf("down changed the rows:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(rows, "\n"))
	}

	if _, err := m.UpTo(ctx, 0); err != nil {
		t.Fatal(err)
	}
	if k := relkind(t, pool, "audit_events"); k != "p" {
		t.Fatalf("after up, audit_events is of kind %q, want a partitioned table", k)
	}
	var legacy int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM audit_events_legacy`).Scan(&legacy); err != nil || legacy != len(rows) {
		t.Fatalf("the legacy partition holds %d rows (%v), want all %d", legacy, err, len(rows))
	}
	if got := trailRows(t, pool); !slices.Equal(got, rows) {
		t.Fatalf("up changed the rows:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(rows, "\n"))
	}
	verified("after down and up", len(rows))

	// A new replica's records continue the ids, and the trail still verifies.
	var maxID int64
	if err := pool.QueryRow(ctx, `SELECT max(id) FROM audit_events`).Scan(&maxID); err != nil {
		t.Fatal(err)
	}
	ids := insertAt(t, db.New(pool, pgtest.Keyring), pool, uuid.New(), time.Now())
	if ids[0] <= maxID {
		t.Fatalf("a new record got id %d, not after %d", ids[0], maxID)
	}
	verified("with a new record", len(rows)+1)
	rows = trailRows(t, pool)

	// Once more: a trail with a legacy partition goes down and up whole too.
	if _, err := m.DownTo(ctx, below); err != nil {
		t.Fatal(err)
	}
	if _, err := m.UpTo(ctx, 0); err != nil {
		t.Fatal(err)
	}
	if got := trailRows(t, pool); !slices.Equal(got, rows) {
		t.Fatalf("the second down and up changed the rows")
	}
	verified("after a second down and up", len(rows))
}

// TestGoingDownRefusesSummaries: the table below version 16 cannot hold a summary's count, so
// going down refuses while one exists, and changes nothing.
func TestGoingDownRefusesSummaries(t *testing.T) {
	ctx := context.Background()
	pool := pgtest.Connect(t, pgtest.NewDatabase(t))
	m := migrator(t, pool)
	store := db.New(pool, pgtest.Keyring)
	now := time.Now()
	e := resolutionAt(now, uuid.New())
	e.Count, e.FirstAt, e.LastAt = 3, now, now.Add(time.Second)
	if err := store.InsertAuditEvents(ctx, []db.AuditEvent{e}); err != nil {
		t.Fatal(err)
	}
	_, err := m.DownTo(ctx, versionBelow(t, db.PartitionedAuditVersion))
	if err == nil || !strings.Contains(err.Error(), "summarise several resolutions") || !strings.Contains(err.Error(), "nothing was changed") {
		t.Fatalf("down with a summary: %v", err)
	}
	if v, _ := db.SchemaVersion(ctx, pool); v != db.LatestVersion() {
		t.Fatalf("the refused down left version %d", v)
	}
}

// TestPartitioningRefusesRecordsPastTheOldTrailsRange: going up over a trail holding a record
// dated past the range of the partition that is to hold the old trail (a clock far ahead) fails
// with a way to find it; once it is gone, going up again works.
func TestPartitioningRefusesRecordsPastTheOldTrailsRange(t *testing.T) {
	ctx := context.Background()
	pool := pgtest.Connect(t, pgtest.NewDatabase(t))
	m := migrator(t, pool)
	if _, err := m.DownTo(ctx, versionBelow(t, db.PartitionedAuditVersion)); err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(ctx, `INSERT INTO audit_events (occurred_at, action, outcome) VALUES
		(now(), 'ResolveModel', 'OK'), (now() + interval '5 days', 'ResolveModel', 'OK')`); err != nil {
		t.Fatal(err)
	}
	_, err := m.UpTo(ctx, 0)
	if err == nil || !strings.Contains(err.Error(), "dated at or after") || !strings.Contains(err.Error(), "SELECT id, occurred_at FROM audit_events WHERE occurred_at >= '") {
		t.Fatalf("up with a record 5 days ahead: %v", err)
	}
	if k := relkind(t, pool, "audit_events"); k != "r" {
		t.Fatalf("the failed up left audit_events of kind %q", k)
	}
	if _, err := pool.Exec(ctx, `DELETE FROM audit_events WHERE occurred_at > now() + interval '1 day'`); err != nil {
		t.Fatal(err)
	}
	if _, err := m.UpTo(ctx, 0); err != nil {
		t.Fatalf("up once the record is gone: %v", err)
	}
	var n int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM audit_events_legacy`).Scan(&n); err != nil || n != 1 {
		t.Fatalf("the legacy partition holds %d rows (%v), want 1", n, err)
	}
}
