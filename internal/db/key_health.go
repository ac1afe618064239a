package db

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/resolverd/resolverd/internal/errs"
	"github.com/resolverd/resolverd/internal/keyring"
	"github.com/resolverd/resolverd/internal/resolve"
)

// The health columns of migration 15, in the order scanHealth reads them.
const (
	centralHealthCols = `cooling_until, suspended_at, suspended_reason, last_report_outcome, last_report_at`
	userHealthCols    = `NULL::timestamptz, suspended_at, suspended_reason, last_report_outcome, last_report_at`
)

// healthScan receives the health columns of one row.
type healthScan struct {
	coolingUntil, suspendedAt, lastAt *time.Time
	reason, last                      *string
}

func (h *healthScan) dest() []any {
	return []any{&h.coolingUntil, &h.suspendedAt, &h.reason, &h.last, &h.lastAt}
}

func (h *healthScan) record() resolve.HealthRecord {
	var r resolve.HealthRecord
	if h.coolingUntil != nil {
		r.CoolingUntil = *h.coolingUntil
	}
	if h.suspendedAt != nil {
		r.SuspendedAt = *h.suspendedAt
	}
	if h.reason != nil {
		r.SuspendedReason = resolve.Outcome(*h.reason)
	}
	if h.last != nil {
		r.LastOutcome = resolve.Outcome(*h.last)
	}
	if h.lastAt != nil {
		r.LastReportAt = *h.lastAt
	}
	return r
}

// KeyReport is what a report did to the key it named.
type KeyReport struct {
	KeyID, ProviderID uuid.UUID
	// UserID is the owner of a user's key; uuid.Nil for a central key.
	UserID uuid.UUID
	Source resolve.CredentialSource
	// Health is the key's stored health after the report.
	Health resolve.HealthRecord
	// Changed says whether resolutions see a difference, Written whether the row was written (and
	// so published to every replica): resolve.ApplyReport.
	Changed, Written bool
	// At is the moment the report was applied (the database's clock).
	At time.Time
}

// ReportCredentialOutcome applies a worker's report to the one key row with id keyID, a central
// key or a user's key (docs/CONTRACT.md §17), under the row's lock. It writes nothing but that
// row's health columns, and only when resolve.ApplyReport says so; the change-notification
// triggers publish the write to every replica. No such key is NOT_FOUND (metadata key_id).
func (s *Store) ReportCredentialOutcome(ctx context.Context, keyID uuid.UUID, outcome resolve.Outcome, retryAfter time.Duration) (KeyReport, error) {
	out := KeyReport{KeyID: keyID}
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		var (
			h      healthScan
			stored string
			encKey *string // api_key_key_id: NULL for a legacy plain row
		)
		err := tx.QueryRow(ctx, `SELECT provider_id, api_key, api_key_key_id, now(), `+centralHealthCols+` FROM ai_provider_keys WHERE id = $1 FOR UPDATE`, keyID).
			Scan(append([]any{&out.ProviderID, &stored, &encKey, &out.At}, h.dest()...)...)
		out.Source = resolve.SourceCentral
		table := centralKeysTable
		if notFound(err) {
			err = tx.QueryRow(ctx, `SELECT ai_provider_id, user_id, api_key, api_key_key_id, now(), `+userHealthCols+` FROM user_ai_provider_keys WHERE id = $1 FOR UPDATE`, keyID).
				Scan(append([]any{&out.ProviderID, &out.UserID, &stored, &encKey, &out.At}, h.dest()...)...)
			out.Source, table = resolve.SourceUser, userKeysTable
		}
		if notFound(err) {
			return errs.New(errs.NotFound, fmt.Sprintf("no central key and no user's key has id %s", keyID), "key_id", keyID.String())
		}
		if err != nil {
			return classify(err)
		}
		next, changed, write := resolve.ApplyReport(h.record(), out.Source == resolve.SourceCentral, outcome, retryAfter, out.At)
		out.Health, out.Changed, out.Written = next, changed, write
		if !write {
			return nil
		}
		// Migration 10's CHECK refuses an update that leaves a legacy plain row plain.
		if encKey == nil {
			at := centralPlace(keyID, out.ProviderID)
			if table == userKeysTable {
				at = userPlace(keyID, out.UserID, out.ProviderID)
			}
			if err := s.sealPlain(ctx, tx, at, stored); err != nil {
				return err
			}
		}
		if table == centralKeysTable {
			_, err = tx.Exec(ctx, `UPDATE ai_provider_keys SET cooling_until = $2, suspended_at = $3, suspended_reason = $4,
last_report_outcome = $5, last_report_at = $6 WHERE id = $1`, keyID, nullTime(next.CoolingUntil), nullTime(next.SuspendedAt),
				nullString(string(next.SuspendedReason)), nullString(string(next.LastOutcome)), nullTime(next.LastReportAt))
		} else {
			_, err = tx.Exec(ctx, `UPDATE user_ai_provider_keys SET suspended_at = $2, suspended_reason = $3,
last_report_outcome = $4, last_report_at = $5 WHERE id = $1`, keyID, nullTime(next.SuspendedAt),
				nullString(string(next.SuspendedReason)), nullString(string(next.LastOutcome)), nullTime(next.LastReportAt))
		}
		return classify(err)
	})
	if err != nil {
		return KeyReport{}, fmt.Errorf("report %s for key %s: %w", outcome, keyID, err)
	}
	return out, nil
}

// UnavailableCentralKeys counts, for each live provider with an enabled central key (by name),
// the enabled keys that are cooling down or suspended now: the resolverd_keys_unavailable gauge.
func (s *Store) UnavailableCentralKeys(ctx context.Context) (map[string]int, error) {
	rows, err := s.pool.Query(ctx, `SELECT p.name, count(*) FILTER (WHERE k.suspended_at IS NOT NULL OR k.cooling_until > now())
FROM ai_providers p JOIN ai_provider_keys k ON k.provider_id = p.id AND k.enabled
WHERE NOT p.deleted GROUP BY p.name`)
	if err != nil {
		return nil, fmt.Errorf("count unavailable central keys: %w", classify(err))
	}
	defer rows.Close()
	out := map[string]int{}
	for rows.Next() {
		var name string
		var n int
		if err := rows.Scan(&name, &n); err != nil {
			return nil, fmt.Errorf("count unavailable central keys: %w", classify(err))
		}
		out[name] = n
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("count unavailable central keys: %w", classify(err))
	}
	return out, nil
}

// EnabledCentralKeys returns the provider's enabled central keys, oldest first (by created_at, then
// id), each sealed (opened when chosen) with its health; none is an empty list.
func (s *Store) EnabledCentralKeys(ctx context.Context, providerID uuid.UUID) ([]*resolve.Key, error) {
	rows, err := s.pool.Query(ctx, `SELECT id, api_key, api_key_key_id, cooling_until, suspended_at FROM ai_provider_keys
WHERE provider_id = $1 AND enabled ORDER BY created_at, id`, providerID)
	if err != nil {
		return nil, fmt.Errorf("read the central keys of provider %s: %w", providerID, classify(err))
	}
	defer rows.Close()
	var out []*resolve.Key
	for rows.Next() {
		var (
			id                 uuid.UUID
			sealed             string
			keyID              *string
			cooling, suspended *time.Time
		)
		if err := rows.Scan(&id, &sealed, &keyID, &cooling, &suspended); err != nil {
			return nil, fmt.Errorf("read the central keys of provider %s: %w", providerID, classify(err))
		}
		out = append(out, s.keyWithHealth(centralPlace(id, providerID), sealed, keyID, cooling, suspended))
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read the central keys of provider %s: %w", providerID, classify(err))
	}
	return out, nil
}

// keyWithHealth is a sealed key with the health the rules use.
func (s *Store) keyWithHealth(at keyring.Place, sealed string, keyID *string, coolingUntil, suspendedAt *time.Time) *resolve.Key {
	k := s.sealedKey(at, sealed, keyID)
	if coolingUntil != nil {
		k.Health.CoolingUntil = *coolingUntil
	}
	k.Health.Suspended = suspendedAt != nil
	return k
}

func nullTime(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

func nullString(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// healthFields are a key's health columns as admin changes' audit records list them.
func healthFields(r resolve.HealthRecord) []field {
	return []field{{"suspended_at", timeText(r.SuspendedAt)}, {"cooling_until", timeText(r.CoolingUntil)}}
}

func timeText(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339Nano)
}
