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
// path) and are stored in their own columns; Details and Changes are stored as one JSON object
// (Changes under "changes").
type AuditEvent struct {
	ID         int64
	OccurredAt time.Time
	Action     string
	TokenID    uuid.UUID // uuid.Nil: no token (the command line)
	ChatID     uuid.UUID // uuid.Nil: no chat
	Outcome    string
	Details    map[string]string
	// Changes are the fields an admin change set, with their values before and after.
	Changes    []FieldChange
	Resolution *ResolutionDetails
	Subject    string // the workload identity that called; "" for a token or the command line
	// Count is the number of identical resolutions the record stands for (0 is read as 1): more
	// than one for a summary (serve --audit-resolutions=summary), which also has the times of the
	// first and the last of them (zero otherwise).
	Count           int
	FirstAt, LastAt time.Time
}

// Summary says whether e stands for several resolutions — or claims to: a stored row whose summary
// columns are not those of one resolution (count 1, no first_at or last_at) is read as a summary,
// so that its MAC covers them.
func (e *AuditEvent) Summary() bool {
	return (e.Count != 0 && e.Count != 1) || !e.FirstAt.IsZero() || !e.LastAt.IsZero()
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
// insert per resolution. The records are appended to this store's chain of batched records.
func (s *Store) InsertAuditEvents(ctx context.Context, events []AuditEvent) error {
	if err := s.copyAuditEvents(ctx, events); err != nil {
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

// ListAuditEvents returns events newest first. The statement names only the filters that are set,
// so that each partition's plan is the index of that filter read backwards (docs/CONTRACT.md §7.4).
func (s *Store) ListAuditEvents(ctx context.Context, f AuditFilter) ([]AuditEvent, error) {
	q := `SELECT ` + auditSelect + ` FROM audit_events WHERE true`
	var args []any
	where := func(cond string, v any) {
		args = append(args, v)
		q += fmt.Sprintf(" AND %s $%d", cond, len(args))
	}
	if f.BeforeID > 0 {
		where("id <", f.BeforeID)
	}
	if f.ChatID != uuid.Nil {
		where("chat_id =", f.ChatID)
	}
	if f.TokenID != uuid.Nil {
		where("token_id =", f.TokenID)
	}
	if f.Action != "" {
		where("action =", f.Action)
	}
	args = append(args, f.Limit)
	q += fmt.Sprintf(" ORDER BY id DESC LIMIT $%d", len(args))
	rows, err := s.pool.Query(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("list audit events: %w", classify(err))
	}
	out, err := collect(rows, scanAuditEvent)
	if err != nil {
		return nil, fmt.Errorf("list audit events: %w", classify(err))
	}
	return out, nil
}

// DeleteAuditEventsBefore removes events older than cutoff row by row, at most limit of them, and
// says how many it removed; callers repeat until it returns fewer than limit, so no transaction
// grows large. Retention drops whole days instead (DropAuditPartitionsBefore) and uses this only
// for the partition that holds the trail written before partitioning (audit_events_legacy), until
// it can be dropped whole. Within a chain occurred_at never decreases, and ties go by position, so
// every batch removes a prefix of each chain: what remains still verifies (docs/CONTRACT.md §7.4).
func (s *Store) DeleteAuditEventsBefore(ctx context.Context, cutoff time.Time, limit int) (int64, error) {
	tag, err := s.pool.Exec(ctx, `DELETE FROM audit_events a USING
(SELECT id, occurred_at FROM audit_events WHERE occurred_at < $1 ORDER BY occurred_at, chain_seq LIMIT $2) old
WHERE a.id = old.id AND a.occurred_at = old.occurred_at`, cutoff, limit)
	if err != nil {
		return 0, fmt.Errorf("delete audit events before %s: %w", cutoff.Format(time.RFC3339), classify(err))
	}
	return tag.RowsAffected(), nil
}

// changed is what an admin change's audit record says besides its action and caller: the target
// ids (and the fingerprint of a secret it set) in details, and every field it set in changes.
type changed struct {
	details map[string]string
	changes []FieldChange
}

// change runs fn in one transaction and records the change in the audit trail inside it, so a
// change and its record commit together or not at all. The record is appended to this store's
// chain of changes, which is held from the record's insert until the commit: the chain advances
// only when the transaction committed, and never forks (docs/CONTRACT.md §7.4).
func (s *Store) change(ctx context.Context, action string, fn func(tx pgx.Tx) (changed, error)) error {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return classify(err)
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }() // nothing to do once committed
	rec, err := fn(tx)
	if err != nil {
		return err
	}
	e := AuditEvent{OccurredAt: time.Now(), Action: action, Outcome: OutcomeOK, Details: rec.details, Changes: rec.changes}
	if p, ok := rbac.FromContext(ctx); ok {
		e.TokenID, e.Subject = p.TokenID, p.Subject
	}
	if id, ok := rec.details["chat_id"]; ok {
		e.ChatID, _ = uuid.Parse(id)
	}
	chain := s.changes
	if chain != nil {
		if err := chain.Begin(ctx); err != nil {
			return fmt.Errorf("wait for the audit trail: %w", classify(err))
		}
	}
	err = copyAudit(ctx, tx.Conn().PgConn(), chain, []AuditEvent{e})
	if err != nil {
		err = fmt.Errorf("record the change in the audit trail: %w", classify(err))
	} else if err = tx.Commit(ctx); err != nil {
		err = fmt.Errorf("commit: %w", classify(err))
	}
	if chain != nil {
		if err != nil {
			chain.Abort()
		} else {
			chain.Commit()
		}
	}
	return err
}

// auditSelect is every column of an audit event, in the order scanStoredEvent reads them.
const auditSelect = `id, occurred_at, action, token_id, chat_id, outcome, purpose, request_id,
  requested_model_config_id, model_config_id, provider_id, credential_source, key_id, fingerprint, fallback,
  fallback_reason, details, subject, count, first_at, last_at, chain_id, chain_seq, mac, prev_mac, mac_key_id`

// storedEvent is a row as stored: the event with its resolution in a struct (as it was written),
// and its place in a chain.
type storedEvent struct {
	AuditEvent
	detailsErr error // the details are not what resolverd writes
	chainID    *uuid.UUID
	chainSeq   *int64
	mac, prev  []byte
	macKeyID   *string
}

func scanStoredEvent(row pgx.Row) (storedEvent, error) {
	var (
		s                                      storedEvent
		token, chat, requested, config, prov   *uuid.UUID
		keyID                                  *uuid.UUID
		purpose, requestID, source, fp, reason *string
		fallback                               *bool
		details                                []byte
		subject                                *string
		count                                  int32
		first, last                            *time.Time
	)
	e := &s.AuditEvent
	if err := row.Scan(&e.ID, &e.OccurredAt, &e.Action, &token, &chat, &e.Outcome, &purpose, &requestID,
		&requested, &config, &prov, &source, &keyID, &fp, &fallback, &reason, &details, &subject,
		&count, &first, &last, &s.chainID, &s.chainSeq, &s.mac, &s.prev, &s.macKeyID); err != nil {
		return s, err
	}
	e.Count = int(count)
	if first != nil {
		e.FirstAt = *first
	}
	if last != nil {
		e.LastAt = *last
	}
	deref := func(p *string) string {
		if p == nil {
			return ""
		}
		return *p
	}
	id := func(p *uuid.UUID) uuid.UUID {
		if p == nil {
			return uuid.Nil
		}
		return *p
	}
	e.TokenID, e.ChatID, e.Subject = id(token), id(chat), deref(subject)
	// As the writer wrote them: a resolution's purpose and request id are never NULL, and a
	// resolved one's credential source and fallback are never NULL (appendAuditContent).
	if purpose != nil || requestID != nil || requested != nil {
		r := &ResolutionDetails{Purpose: deref(purpose), RequestID: deref(requestID), RequestedConfigID: id(requested)}
		if source != nil || fallback != nil || config != nil || prov != nil || keyID != nil || fp != nil || reason != nil {
			r.Resolved = true
			r.ConfigID, r.ProviderID, r.CredentialSource = id(config), id(prov), deref(source)
			r.KeyID, r.Fingerprint, r.FallbackReason = id(keyID), deref(fp), deref(reason)
			r.Fallback = fallback != nil && *fallback
		}
		e.Resolution = r
	}
	if details != nil {
		e.Details, e.Changes, s.detailsErr = parseDetails(details)
	}
	return s, nil
}

// scanAuditEvent reads a row for ListAuditEvents, folding a resolution's columns into Details
// under the names the API shows.
func scanAuditEvent(row pgx.Row) (AuditEvent, error) {
	s, err := scanStoredEvent(row)
	if err != nil {
		return AuditEvent{}, err
	}
	e := s.AuditEvent
	if e.Details == nil {
		e.Details = map[string]string{}
	}
	r := e.Resolution
	if r == nil {
		return e, nil
	}
	e.Resolution = nil
	put := func(k, v string) {
		if v != "" {
			e.Details[k] = v
		}
	}
	putID := func(k string, v uuid.UUID) {
		if v != uuid.Nil {
			e.Details[k] = v.String()
		}
	}
	put("purpose", r.Purpose)
	put("request_id", r.RequestID)
	putID("requested_model_config_id", r.RequestedConfigID)
	if r.Resolved {
		putID("model_config_id", r.ConfigID)
		putID("provider_id", r.ProviderID)
		put("credential_source", r.CredentialSource)
		putID("key_id", r.KeyID)
		put("fingerprint", r.Fingerprint)
		e.Details["fallback"] = strconv.FormatBool(r.Fallback)
		put("fallback_reason", r.FallbackReason)
	}
	return e, nil
}
