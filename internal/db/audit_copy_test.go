package db_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/resolverd/resolverd/internal/audit"
	"github.com/resolverd/resolverd/internal/db"
	"github.com/resolverd/resolverd/internal/pgtest"
)

// auditSamples covers every column in every state: a resolution with and without fallback, one
// that failed before resolving, an ambient one (no key, no fingerprint), a record with no token
// and no chat, admin changes with awkward details, and instants far from now.
func auditSamples() []db.AuditEvent {
	token, chat := uuid.New(), uuid.New()
	at := time.Date(2026, 11, 29, 5, 6, 7, 123456789, time.FixedZone("x", 3600))
	awkward := "quote\" back\\slash \n\t é ✓ </script>"
	return []db.AuditEvent{
		{OccurredAt: at, Action: "ResolveModel", TokenID: token, ChatID: chat, Outcome: db.OutcomeOK,
			Resolution: &db.ResolutionDetails{Purpose: "PURPOSE_CHAT", RequestID: "req-1", RequestedConfigID: uuid.New(),
				Resolved: true, ConfigID: uuid.New(), ProviderID: uuid.New(), CredentialSource: "CREDENTIAL_SOURCE_CENTRAL",
				KeyID: uuid.New(), Fingerprint: "0123456789abcdef"}},
		{OccurredAt: at.Add(time.Microsecond), Action: "ResolveModel", TokenID: token, ChatID: chat, Outcome: db.OutcomeOK,
			Resolution: &db.ResolutionDetails{Purpose: "PURPOSE_SUBAGENT", RequestID: "req-2", RequestedConfigID: uuid.New(),
				Resolved: true, ConfigID: uuid.New(), ProviderID: uuid.New(), CredentialSource: "CREDENTIAL_SOURCE_USER",
				KeyID: uuid.New(), Fingerprint: "fedcba9876543210", Fallback: true, FallbackReason: "MODEL_CONFIG_DISABLED"}},
		{OccurredAt: at, Action: "ResolveModel", TokenID: token, ChatID: chat, Outcome: "USER_KEY_REQUIRED",
			Resolution: &db.ResolutionDetails{Purpose: "PURPOSE_TITLE", RequestID: "", RequestedConfigID: uuid.New()}},
		{OccurredAt: at, Action: "ResolveModel", TokenID: token, ChatID: chat, Outcome: db.OutcomeOK,
			Resolution: &db.ResolutionDetails{Purpose: "PURPOSE_CHAT", RequestID: "req-4", Resolved: true, ConfigID: uuid.New(),
				ProviderID: uuid.New(), CredentialSource: "CREDENTIAL_SOURCE_AMBIENT"}},
		{OccurredAt: at, Action: "ResolveModel", Subject: "spiffe://example.org/ns/chat/sa/worker", Outcome: "CHAT_NOT_FOUND",
			Resolution: &db.ResolutionDetails{Purpose: "PURPOSE_CHAT"}},
		{OccurredAt: at, Action: "CreateProvider", TokenID: token, Outcome: db.OutcomeOK,
			Details: map[string]string{"provider_id": uuid.NewString(), "name": awkward, awkward: "key"}},
		{OccurredAt: time.Date(1999, 12, 31, 23, 59, 59, 999999000, time.UTC), Action: "PutChat", Outcome: db.OutcomeOK},
		{OccurredAt: time.Date(2262, 1, 1, 0, 0, 0, 1000, time.UTC), Action: "DeleteUser", ChatID: chat, Outcome: "NOT_FOUND"},
	}
}

// referenceCopy writes events with pgx's own COPY encoder, column by column, as the reference
// the hand-written binary encoder must agree with.
func referenceCopy(ctx context.Context, t *testing.T, conn interface {
	CopyFrom(context.Context, pgx.Identifier, []string, pgx.CopyFromSource) (int64, error)
}, events []db.AuditEvent) {
	t.Helper()
	id := func(u uuid.UUID) any {
		if u == uuid.Nil {
			return nil
		}
		return u
	}
	text := func(s string) any {
		if s == "" {
			return nil
		}
		return s
	}
	cols := []string{"occurred_at", "action", "token_id", "chat_id", "outcome", "purpose", "request_id",
		"requested_model_config_id", "model_config_id", "provider_id", "credential_source", "key_id", "fingerprint",
		"fallback", "fallback_reason", "details", "subject"}
	_, err := conn.CopyFrom(ctx, pgx.Identifier{"audit_events"}, cols, pgx.CopyFromSlice(len(events), func(i int) ([]any, error) {
		e := events[i]
		row := make([]any, len(cols))
		row[0], row[1], row[2], row[3], row[4] = e.OccurredAt, e.Action, id(e.TokenID), id(e.ChatID), e.Outcome
		if r := e.Resolution; r != nil {
			row[5], row[6], row[7] = r.Purpose, r.RequestID, id(r.RequestedConfigID)
			if r.Resolved {
				row[8], row[9], row[10], row[11] = id(r.ConfigID), id(r.ProviderID), r.CredentialSource, id(r.KeyID)
				row[12], row[13], row[14] = text(r.Fingerprint), r.Fallback, text(r.FallbackReason)
			}
		}
		if len(e.Details) > 0 {
			row[15] = e.Details
		}
		row[16] = text(e.Subject)
		return row, nil
	}))
	if err != nil {
		t.Fatal(err)
	}
}

// TestAuditCopyMatchesPgx: every row InsertAuditEvents writes is, column for column, the row pgx's
// own encoder writes for the same event. The store has no keys, so it writes the events unchained
// and as given (a chain would also make their times non-decreasing: audit_chain_test.go).
func TestAuditCopyMatchesPgx(t *testing.T) {
	ctx := context.Background()
	pool := pgtest.NewPool(t)
	store := db.New(pool, nil)
	events := auditSamples()

	referenceCopy(ctx, t, pool, events)
	if err := store.InsertAuditEvents(ctx, events); err != nil {
		t.Fatal(err)
	}
	rows, err := pool.Query(ctx, `SELECT to_jsonb(a) - 'id' FROM audit_events a ORDER BY id`)
	if err != nil {
		t.Fatal(err)
	}
	got, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2*len(events) {
		t.Fatalf("%d rows, want %d", len(got), 2*len(events))
	}
	for i := range events {
		if want, have := got[i], got[len(events)+i]; want != have {
			t.Errorf("event %d:\n pgx:  %s\n ours: %s", i, want, have)
		}
	}
	// Spot-check the values themselves, not only the agreement.
	var at time.Time
	var fallback bool
	var reason string
	if err := pool.QueryRow(ctx, `SELECT occurred_at, fallback, fallback_reason FROM audit_events ORDER BY id OFFSET $1 LIMIT 1`,
		len(events)+1).Scan(&at, &fallback, &reason); err != nil {
		t.Fatal(err)
	}
	if want := events[1].OccurredAt.Truncate(time.Microsecond); !at.Equal(want) || !fallback || reason != "MODEL_CONFIG_DISABLED" {
		t.Errorf("read back %v %v %q, want %v true MODEL_CONFIG_DISABLED", at, fallback, reason, want)
	}
}

// TestAuditCopyAllOrNothing: a batch PostgreSQL refuses (here, text with a NUL byte, which no
// text column can hold) writes none of its rows and says why.
func TestAuditCopyAllOrNothing(t *testing.T) {
	ctx := context.Background()
	pool := pgtest.NewPool(t)
	store := db.New(pool, pgtest.Keyring)
	events := auditSamples()
	events[len(events)-1].Outcome = "bad\x00outcome"
	err := store.InsertAuditEvents(ctx, events)
	if err == nil || !strings.Contains(err.Error(), "write 8 audit events") {
		t.Fatalf("InsertAuditEvents = %v, want a failure naming the batch", err)
	}
	var n int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM audit_events`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Fatalf("%d rows written by a refused batch, want 0", n)
	}
	// The connection that carried the refused COPY is usable again.
	if err := store.InsertAuditEvents(ctx, events[:2]); err != nil {
		t.Fatal(err)
	}
}

// TestAuditWriterSkipsARefusedRecord: through the real writer and PostgreSQL, one record no column
// can take (a NUL byte) costs only itself: the other 199 of its batch reach the trail.
func TestAuditWriterSkipsARefusedRecord(t *testing.T) {
	ctx := context.Background()
	pool := pgtest.NewPool(t)
	w := audit.NewWriter(db.New(pool, pgtest.Keyring), slog.New(slog.NewTextHandler(io.Discard, nil)),
		audit.Options{BatchSize: 200, FlushInterval: time.Hour})
	w.Start()
	for i := range 200 {
		e := auditSamples()[0]
		e.Resolution.RequestID = fmt.Sprintf("req-%d", i)
		if i == 123 {
			e.Resolution.RequestID = "req-\x00"
		}
		if err := w.Record(e); err != nil {
			t.Fatal(err)
		}
	}
	w.Close(ctx)
	var n int
	var missing string
	if err := pool.QueryRow(ctx, `SELECT count(*), coalesce(min(g), '') FROM generate_series(0, 199) i
CROSS JOIN LATERAL (SELECT 'req-' || i AS g) x
LEFT JOIN audit_events a ON a.request_id = x.g WHERE a.id IS NULL`).Scan(&n, &missing); err != nil {
		t.Fatal(err)
	}
	if n != 1 || missing != "req-123" || w.Rejected() != 1 {
		t.Fatalf("%d records missing (first %q), %d rejected; want only req-123", n, missing, w.Rejected())
	}
}
