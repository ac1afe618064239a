package audit

import (
	"github.com/google/uuid"

	"github.com/resolverd/resolverd/internal/db"
)

// Summary mode (serve --audit-resolutions=summary, docs/CONTRACT.md §7.4): the successful
// resolutions one replica makes within a window that are identical in everything but their time
// and request id become one record, with their count and the times of the first and the last.
// Everything else — a failed or refused resolution, an admin call — stays a record of its own.

// summaryKey is what makes two resolutions identical.
type summaryKey struct {
	token, chat, requested, config, provider, key uuid.UUID
	subject, purpose, source, fingerprint         string
	fallbackReason, outcome                       string
	fallback                                      bool
}

// summarisable reports whether e may be folded into a summary: a resolution that succeeded.
func summarisable(e *db.AuditEvent) bool {
	r := e.Resolution
	return e.Action == "ResolveModel" && e.Outcome == db.OutcomeOK && r != nil && r.Resolved &&
		len(e.Details) == 0 && len(e.Changes) == 0 && !e.Summary()
}

func keyOf(e *db.AuditEvent) summaryKey {
	r := e.Resolution
	return summaryKey{
		token: e.TokenID, chat: e.ChatID, requested: r.RequestedConfigID, config: r.ConfigID, provider: r.ProviderID,
		key: r.KeyID, subject: e.Subject, purpose: r.Purpose, source: r.CredentialSource, fingerprint: r.Fingerprint,
		fallbackReason: r.FallbackReason, outcome: e.Outcome, fallback: r.Fallback,
	}
}

// summaries gathers a window's summarisable resolutions, in the order of their first.
type summaries struct {
	index map[summaryKey]int
	rows  []db.AuditEvent
}

func newSummaries() *summaries { return &summaries{index: map[summaryKey]int{}} }

// add folds e into its summary, and returns the number of records the window holds.
func (s *summaries) add(e db.AuditEvent) int {
	k := keyOf(&e)
	i, ok := s.index[k]
	if !ok {
		s.index[k] = len(s.rows)
		s.rows = append(s.rows, e)
		return len(s.rows)
	}
	r := &s.rows[i]
	if !r.Summary() {
		// The second one: the record becomes a summary, without a request id (each call had its
		// own). Its Resolution is the writer's own copy.
		res := *r.Resolution
		res.RequestID = ""
		r.Resolution = &res
		r.Count, r.FirstAt, r.LastAt = 1, r.OccurredAt, r.OccurredAt
	}
	r.Count++
	if e.OccurredAt.Before(r.FirstAt) {
		r.FirstAt, r.OccurredAt = e.OccurredAt, e.OccurredAt
	}
	if e.OccurredAt.After(r.LastAt) {
		r.LastAt = e.OccurredAt
	}
	return len(s.rows)
}

// take returns the window's records, a summary's occurred_at being its first resolution's time,
// and starts a new window.
func (s *summaries) take() []db.AuditEvent {
	rows := s.rows
	s.rows = nil
	clear(s.index)
	return rows
}

// len is the number of records the window holds.
func (s *summaries) len() int {
	if s == nil {
		return 0
	}
	return len(s.rows)
}
