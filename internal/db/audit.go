package db

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/resolverd/resolverd/internal/rbac"
)

// AuditEvent is one audit_events row. Details never hold a secret: keys appear by id and
// fingerprint.
type AuditEvent struct {
	ID         int64
	OccurredAt time.Time
	Action     string
	TokenID    uuid.UUID // uuid.Nil: no token (the command line)
	ChatID     uuid.UUID // uuid.Nil: no chat
	Outcome    string
	Details    map[string]string
}

// OutcomeOK is the outcome of a call that succeeded.
const OutcomeOK = "OK"

// InsertAuditEvents writes a batch in one statement (COPY): one transaction per batch, never one
// insert per resolution.
func (s *Store) InsertAuditEvents(ctx context.Context, events []AuditEvent) error {
	_, err := s.pool.CopyFrom(ctx, pgx.Identifier{"audit_events"},
		[]string{"occurred_at", "action", "token_id", "chat_id", "outcome", "details"},
		pgx.CopyFromSlice(len(events), func(i int) ([]any, error) {
			e := events[i]
			details := e.Details
			if details == nil {
				details = map[string]string{}
			}
			return []any{e.OccurredAt, e.Action, nullUUID(e.TokenID), nullUUID(e.ChatID), e.Outcome, details}, nil
		}))
	if err != nil {
		return fmt.Errorf("write %d audit events: %w", len(events), classify(err))
	}
	return nil
}

// AuditFilter selects audit events; zero fields do not filter. BeforeID pages: only events with a
// smaller id (older) are returned.
type AuditFilter struct {
	ChatID   uuid.UUID
	TokenID  uuid.UUID
	Action   string
	BeforeID int64
	Limit    int
}

// ListAuditEvents returns events newest first.
func (s *Store) ListAuditEvents(ctx context.Context, f AuditFilter) ([]AuditEvent, error) {
	var before *int64
	if f.BeforeID > 0 {
		before = &f.BeforeID
	}
	var action *string
	if f.Action != "" {
		action = &f.Action
	}
	rows, err := s.pool.Query(ctx, `SELECT id, occurred_at, action, token_id, chat_id, outcome, details FROM audit_events
WHERE ($1::bigint IS NULL OR id < $1) AND ($2::uuid IS NULL OR chat_id = $2) AND ($3::uuid IS NULL OR token_id = $3)
  AND ($4::text IS NULL OR action = $4)
ORDER BY id DESC LIMIT $5`, before, nullUUID(f.ChatID), nullUUID(f.TokenID), action, f.Limit)
	if err != nil {
		return nil, fmt.Errorf("list audit events: %w", classify(err))
	}
	out, err := collect(rows, func(row pgx.Row) (AuditEvent, error) {
		var e AuditEvent
		var token, chat *uuid.UUID
		err := row.Scan(&e.ID, &e.OccurredAt, &e.Action, &token, &chat, &e.Outcome, &e.Details)
		if token != nil {
			e.TokenID = *token
		}
		if chat != nil {
			e.ChatID = *chat
		}
		return e, err
	})
	if err != nil {
		return nil, fmt.Errorf("list audit events: %w", classify(err))
	}
	return out, nil
}

// DeleteAuditEventsBefore removes events older than cutoff, at most limit of them, and says how
// many it removed; callers repeat until it returns fewer than limit, so no transaction grows large.
func (s *Store) DeleteAuditEventsBefore(ctx context.Context, cutoff time.Time, limit int) (int64, error) {
	tag, err := s.pool.Exec(ctx, `DELETE FROM audit_events WHERE id IN
(SELECT id FROM audit_events WHERE occurred_at < $1 ORDER BY occurred_at LIMIT $2)`, cutoff, limit)
	if err != nil {
		return 0, fmt.Errorf("delete audit events before %s: %w", cutoff.Format(time.RFC3339), classify(err))
	}
	return tag.RowsAffected(), nil
}

// change runs fn in one transaction and records the change in the audit trail inside it, so a
// change and its record commit together or not at all. fn returns the record's details (target
// ids, the fingerprint of a secret it set).
func (s *Store) change(ctx context.Context, action string, fn func(tx pgx.Tx) (map[string]string, error)) error {
	return s.inTx(ctx, func(tx pgx.Tx) error {
		details, err := fn(tx)
		if err != nil {
			return err
		}
		var token *uuid.UUID
		if p, ok := rbac.FromContext(ctx); ok && p.TokenID != uuid.Nil {
			token = &p.TokenID
		}
		if details == nil {
			details = map[string]string{}
		}
		var chat *string
		if id, ok := details["chat_id"]; ok {
			chat = &id
		}
		_, err = tx.Exec(ctx, `INSERT INTO audit_events (occurred_at, action, token_id, chat_id, outcome, details)
VALUES (clock_timestamp(), $1, $2, $3, $4, $5)`, action, token, chat, OutcomeOK, details)
		if err != nil {
			return fmt.Errorf("record the change in the audit trail: %w", classify(err))
		}
		return nil
	})
}
