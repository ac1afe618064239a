package db

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/resolverd/resolverd/internal/rbac"
)

// AuditEvent is one audit_events row. Details never hold a secret: keys appear by id and
// fingerprint. A resolution's details come as Resolution (a struct, cheap to fill on the hot
// path) and are stored as the same JSON object Details would make.
type AuditEvent struct {
	ID         int64
	OccurredAt time.Time
	Action     string
	TokenID    uuid.UUID // uuid.Nil: no token (the command line)
	Subject    string    // the workload identity that called; "" for a token or the command line
	ChatID     uuid.UUID // uuid.Nil: no chat
	Outcome    string
	Details    map[string]string
	Resolution *ResolutionDetails
}

// ResolutionDetails is what a resolution's audit record keeps beyond the columns.
type ResolutionDetails struct {
	Purpose           string
	RequestID         string
	RequestedConfigID uuid.UUID
	// The rest is set when the call resolved.
	Resolved         bool
	ConfigID         uuid.UUID
	ProviderID       uuid.UUID
	CredentialSource string
	KeyID            uuid.UUID // uuid.Nil for ambient credentials
	Fingerprint      string
	Fallback         bool
	FallbackReason   string
}

// OutcomeOK is the outcome of a call that succeeded.
const OutcomeOK = "OK"

// InsertAuditEvents writes a batch in one statement (COPY): one transaction per batch, never one
// insert per resolution.
func (s *Store) InsertAuditEvents(ctx context.Context, events []AuditEvent) error {
	if err := s.copyAuditEvents(ctx, events); err != nil {
		return fmt.Errorf("write %d audit events: %w", len(events), classify(err))
	}
	return nil
}

var auditColumns = []string{"occurred_at", "action", "token_id", "chat_id", "outcome",
	"purpose", "request_id", "requested_model_config_id", "model_config_id", "provider_id", "credential_source",
	"key_id", "fingerprint", "fallback", "fallback_reason", "details", "subject"}

// appendDetails writes a details map as a JSON object of strings.
func appendDetails(b []byte, details map[string]string) []byte {
	b = append(b, '{')
	first := true
	for k, v := range details {
		if !first {
			b = append(b, ',')
		}
		first = false
		b = appendJSONString(b, k)
		b = append(b, ':')
		b = appendJSONString(b, v)
	}
	return append(b, '}')
}

// appendJSONString appends s as a JSON string.
func appendJSONString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '"' || c == '\\':
			b = append(b, '\\', c)
		case c < 0x20:
			b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
		default:
			b = append(b, c)
		}
	}
	return append(b, '"')
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
	rows, err := s.pool.Query(ctx, `SELECT id, occurred_at, action, token_id, chat_id, outcome, purpose, request_id,
  requested_model_config_id, model_config_id, provider_id, credential_source, key_id, fingerprint, fallback,
  fallback_reason, details, subject
FROM audit_events
WHERE ($1::bigint IS NULL OR id < $1) AND ($2::uuid IS NULL OR chat_id = $2) AND ($3::uuid IS NULL OR token_id = $3)
  AND ($4::text IS NULL OR action = $4)
ORDER BY id DESC LIMIT $5`, before, nullUUID(f.ChatID), nullUUID(f.TokenID), action, f.Limit)
	if err != nil {
		return nil, fmt.Errorf("list audit events: %w", classify(err))
	}
	out, err := collect(rows, scanAuditEvent)
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
		var subject *string
		if p, ok := rbac.FromContext(ctx); ok && p.TokenID != uuid.Nil {
			token = &p.TokenID
		} else if ok && p.Subject != "" {
			subject = &p.Subject
		}
		if details == nil {
			details = map[string]string{}
		}
		var chat *string
		if id, ok := details["chat_id"]; ok {
			chat = &id
		}
		_, err = tx.Exec(ctx, `INSERT INTO audit_events (occurred_at, action, token_id, chat_id, outcome, details, subject)
VALUES (clock_timestamp(), $1, $2, $3, $4, $5, $6)`, action, token, chat, OutcomeOK, details, subject)
		if err != nil {
			return fmt.Errorf("record the change in the audit trail: %w", classify(err))
		}
		return nil
	})
}

// scanAuditEvent reads a row, folding a resolution's columns into Details under the names the
// API shows.
func scanAuditEvent(row pgx.Row) (AuditEvent, error) {
	var (
		e                                      AuditEvent
		token, chat, requested, config, prov   *uuid.UUID
		keyID                                  *uuid.UUID
		purpose, requestID, source, fp, reason *string
		subject                                *string
		fallback                               *bool
	)
	if err := row.Scan(&e.ID, &e.OccurredAt, &e.Action, &token, &chat, &e.Outcome, &purpose, &requestID,
		&requested, &config, &prov, &source, &keyID, &fp, &fallback, &reason, &e.Details, &subject); err != nil {
		return e, err
	}
	if token != nil {
		e.TokenID = *token
	}
	if chat != nil {
		e.ChatID = *chat
	}
	if subject != nil {
		e.Subject = *subject
	}
	if e.Details == nil {
		e.Details = map[string]string{}
	}
	put := func(k string, v *string) {
		if v != nil && *v != "" {
			e.Details[k] = *v
		}
	}
	putID := func(k string, v *uuid.UUID) {
		if v != nil {
			e.Details[k] = v.String()
		}
	}
	put("purpose", purpose)
	put("request_id", requestID)
	putID("requested_model_config_id", requested)
	putID("model_config_id", config)
	putID("provider_id", prov)
	put("credential_source", source)
	putID("key_id", keyID)
	put("fingerprint", fp)
	if fallback != nil {
		e.Details["fallback"] = strconv.FormatBool(*fallback)
	}
	put("fallback_reason", reason)
	return e, nil
}
