package db_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/resolverd/resolverd/internal/auditchain"
	"github.com/resolverd/resolverd/internal/db"
	"github.com/resolverd/resolverd/internal/pgtest"
)

// TestSummariesAreChainedWithTheirCount: a summary is stored with its count, first_at and last_at,
// listed with them, and its MAC covers them: changing its count, or making it look like a record
// of one resolution, is found by verification.
func TestSummariesAreChainedWithTheirCount(t *testing.T) {
	ctx := context.Background()
	pool := pgtest.NewPool(t)
	store := db.New(pool, pgtest.Keyring)
	chat := uuid.New()
	first := time.Date(2026, 3, 4, 5, 6, 7, 123456000, time.UTC)
	sum := resolutionAt(first, chat)
	sum.Resolution.RequestID = ""
	sum.Count, sum.FirstAt, sum.LastAt = 42, first, first.Add(9*time.Second+999*time.Microsecond)
	single := resolutionAt(first.Add(10*time.Second), chat)
	if err := store.InsertAuditEvents(ctx, []db.AuditEvent{sum, single}); err != nil {
		t.Fatal(err)
	}
	events, err := store.ListAuditEvents(ctx, db.AuditFilter{ChatID: chat, Limit: 10})
	if err != nil || len(events) != 2 {
		t.Fatalf("listed %v, %v", events, err)
	}
	got, one := events[1], events[0]
	if !got.Summary() || got.Count != 42 || !got.FirstAt.Equal(sum.FirstAt) || !got.LastAt.Equal(sum.LastAt) || got.Details["request_id"] != "" {
		t.Fatalf("summary read back as %+v", got)
	}
	if one.Summary() || one.Count != 1 || !one.FirstAt.IsZero() || one.Details["request_id"] == "" {
		t.Fatalf("single record read back as %+v", one)
	}
	if st, err := verifyTrail(t, pool); err != nil || st.Events != 2 {
		t.Fatalf("verify: %+v, %v", st, err)
	}
	edited := func(what, sql string) {
		t.Helper()
		if _, err := pool.Exec(ctx, sql, got.ID); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		_, err := verifyTrail(t, pool)
		var p *auditchain.Problem
		if !errors.As(err, &p) || p.EventID != got.ID || p.Kind != "edited" {
			t.Fatalf("%s: verify says %v, want event %d edited", what, err, got.ID)
		}
	}
	edited("a count raised", `UPDATE audit_events SET count = 43 WHERE id = $1`)
	edited("a last_at moved", `UPDATE audit_events SET count = 42, last_at = last_at + interval '1 second' WHERE id = $1`)
	edited("a summary made a single record", `UPDATE audit_events SET count = 1, first_at = NULL, last_at = NULL WHERE id = $1`)
	if _, err := pool.Exec(ctx, `UPDATE audit_events SET count = 42, first_at = $2, last_at = $3 WHERE id = $1`, got.ID, sum.FirstAt, sum.LastAt); err != nil {
		t.Fatal(err)
	}
	if _, err := verifyTrail(t, pool); err != nil {
		t.Fatalf("put back: %v", err)
	}
	// The table refuses a summary without its times, or a single record with them.
	for _, sql := range []string{
		`UPDATE audit_events SET first_at = NULL WHERE id = $1`,
		`UPDATE audit_events SET count = 0 WHERE id = $1`,
	} {
		if _, err := pool.Exec(ctx, sql, got.ID); err == nil {
			t.Errorf("%s was accepted", sql)
		}
	}
	if _, err := pool.Exec(ctx, `UPDATE audit_events SET first_at = now(), last_at = now() WHERE id = $1`, one.ID); err == nil {
		t.Error("a single record with first_at was accepted")
	}
}
