package db_test

import (
	"context"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/resolverd/resolverd/internal/db"
	"github.com/resolverd/resolverd/internal/errs"
	"github.com/resolverd/resolverd/internal/pgtest"
	"github.com/resolverd/resolverd/internal/resolve"
)

// TestReportsOnLegacyPlainKeys: a report on a key still stored as legacy plain text (a NULL key id,
// which migration 10's CHECK refuses to leave on an updated row) seals that row in the same
// transaction and records the health; a report changes the one row it names and no other; an id of
// no key is NOT_FOUND (docs/CONTRACT.md §17).
func TestReportsOnLegacyPlainKeys(t *testing.T) {
	ctx := context.Background()
	pool, m := legacyDB(t)
	seedLegacy(t, pool)
	plainUserKey := uuid.New()
	exec(t, pool, `INSERT INTO user_chat_provider_keys (id, user_id, chat_provider_id, api_key) VALUES ($1, $2, $3, 'sk-legacy-plain-user')`,
		plainUserKey, userID(0), providerID(1))
	if _, err := m.UpTo(ctx, 0); err != nil {
		t.Fatal(err)
	}
	s := db.New(pool, pgtest.Keyring)
	var plainCentral uuid.UUID
	var provider uuid.UUID
	if err := pool.QueryRow(ctx, `SELECT id, provider_id FROM ai_provider_keys WHERE api_key_key_id IS NULL ORDER BY id LIMIT 1`).Scan(&plainCentral, &provider); err != nil {
		t.Fatal(err)
	}
	before := healthRows(t, ctx, s)

	rep, err := s.ReportCredentialOutcome(ctx, plainCentral, resolve.OutcomeRateLimited, 90*time.Second)
	if err != nil {
		t.Fatalf("report on a plain central key: %v", err)
	}
	if rep.Source != resolve.SourceCentral || rep.ProviderID != provider || !rep.Changed || !rep.Written ||
		!rep.Health.CoolingUntil.Equal(rep.At.Add(90*time.Second)) || rep.Health.LastOutcome != resolve.OutcomeRateLimited {
		t.Fatalf("report: %+v", rep)
	}
	rep, err = s.ReportCredentialOutcome(ctx, plainUserKey, resolve.OutcomeUnauthorized, 0)
	if err != nil {
		t.Fatalf("report on a plain user key: %v", err)
	}
	if rep.Source != resolve.SourceUser || rep.UserID != userID(0) || rep.ProviderID != providerID(1) || rep.Health.SuspendedAt.IsZero() {
		t.Fatalf("report: %+v", rep)
	}
	// Both rows sealed in their place, still opening to their legacy plaintext.
	for _, id := range []uuid.UUID{plainCentral, plainUserKey} {
		var keyID *string
		if err := pool.QueryRow(ctx, `SELECT api_key_key_id FROM ai_provider_keys WHERE id = $1 UNION ALL SELECT api_key_key_id FROM user_ai_provider_keys WHERE id = $1`, id).Scan(&keyID); err != nil || keyID == nil {
			t.Fatalf("key %s after the report: key id %v, %v", id, keyID, err)
		}
	}
	if k, err := s.UserKey(ctx, userID(0), providerID(1)); err != nil || opened(t, k) != "sk-legacy-plain-user" || !k.Health.Suspended {
		t.Fatalf("the reported user key: %v %+v", err, k)
	}
	keys, err := s.EnabledCentralKeys(ctx, provider)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range keys {
		if k.ID == plainCentral && (k.Health.Available(time.Now()) || opened(t, k) == "") {
			t.Fatalf("the reported central key reads as %+v", k.Health)
		}
	}
	// No other row changed.
	after := healthRows(t, ctx, s)
	for id, h := range after {
		if id != plainCentral && id != plainUserKey && h != before[id] {
			t.Errorf("key %s changed with another key's report: %+v → %+v", id, before[id], h)
		}
	}
	if _, err := s.ReportCredentialOutcome(ctx, uuid.New(), resolve.OutcomeOK, 0); !errs.Is(err, errs.NotFound) {
		t.Fatalf("an unknown key: %v", err)
	}
}

// healthRows is every key row's stored health, by id.
func healthRows(t *testing.T, ctx context.Context, s *db.Store) map[uuid.UUID]resolve.HealthRecord {
	t.Helper()
	out := map[uuid.UUID]resolve.HealthRecord{}
	keys, err := s.ListProviderKeys(ctx, uuid.Nil, db.Page[db.ProviderKeyPos]{})
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range keys {
		out[k.ID] = k.Health
	}
	for u := range 3 {
		uk, err := s.ListUserProviderKeys(ctx, userID(u), db.Page[db.UserProviderKeyPos]{})
		if err != nil {
			t.Fatal(err)
		}
		for _, k := range uk {
			out[k.ID] = k.Health
		}
	}
	if len(out) < 10 {
		t.Fatalf("only %d key rows", len(out))
	}
	return out
}
