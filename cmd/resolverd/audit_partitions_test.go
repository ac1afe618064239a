package main

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/resolverd/resolverd/internal/db"
	"github.com/resolverd/resolverd/internal/pgtest"
)

// TestAuditVerifyPassesAfterPartitionMaintenanceAndRetention: docs/CONTRACT.md §7.4 — records
// that waited in the default partition and were moved into their day's partition still verify,
// and so does what remains once retention has dropped the oldest days: within a chain occurred_at
// never decreases, so a dropped day is a prefix of each chain.
func TestAuditVerifyPassesAfterPartitionMaintenanceAndRetention(t *testing.T) {
	ctx := context.Background()
	url := pgtest.NewDatabase(t)
	pool := pgtest.Connect(t, url)
	env := map[string]string{"RESOLVER_DATABASE_URL": url, "RESOLVER_ENCRYPTION_KEYS": pgtest.EncryptionKeys}
	today := time.Now().UTC().Truncate(24 * time.Hour)
	// Two replicas' chains, each across six days, none of the past ones with a partition yet —
	// unless UTC midnight passed since the package's template database was migrated, when
	// yesterday has one of the partitions migration 16 made.
	parts, err := db.New(pool, pgtest.Keyring).AuditPartitions(ctx)
	if err != nil {
		t.Fatal(err)
	}
	inDefault := int64(0)
	for d := -5; d <= -1; d++ {
		day := today.AddDate(0, 0, d)
		if !slices.ContainsFunc(parts, func(p db.AuditPartition) bool {
			return !p.Default && (p.From.IsZero() || !p.From.After(day)) && (p.To.IsZero() || day.Before(p.To))
		}) {
			inDefault += 2 * 3
		}
	}
	if inDefault < 2*4*3 {
		t.Fatalf("partitions %v cover more than yesterday of the past days", parts)
	}
	for range 2 {
		store := db.New(pool, pgtest.Keyring)
		for d := -5; d <= 0; d++ {
			var batch []db.AuditEvent
			for i := range 3 {
				at := today.AddDate(0, 0, d).Add(time.Duration(i+1) * time.Hour)
				batch = append(batch, db.AuditEvent{OccurredAt: at, Action: "ResolveModel", ChatID: uuid.New(), Outcome: db.OutcomeOK,
					Resolution: &db.ResolutionDetails{Purpose: "chat", RequestID: "r", Resolved: true, ConfigID: uuid.New(),
						ProviderID: uuid.New(), CredentialSource: "central", KeyID: uuid.New(), Fingerprint: "fp"}})
			}
			if err := store.InsertAuditEvents(ctx, batch); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := store.PutUser(ctx, uuid.New(), "partitioned-"+uuid.NewString()[:8]); err != nil {
			t.Fatal(err)
		}
	}
	if n := scalar[int64](t, pool, `SELECT count(*) FROM audit_events_default`); n != inDefault {
		t.Fatalf("%d records in the default partition, want the %d of past days without a partition", n, inDefault)
	}
	verify := func(what string, want ...string) {
		t.Helper()
		code, out, errOut := cli(ctx, env, "audit", "verify")
		if code != 0 {
			t.Fatalf("%s: code %d, %q %q", what, code, out, errOut)
		}
		for _, w := range want {
			if !strings.Contains(out, w) {
				t.Fatalf("%s: %q lacks %q", what, out, w)
			}
		}
	}
	verify("with records in the default partition", "verified 38 events in 4 chains")

	store := db.New(pool, pgtest.Keyring)
	if _, err := store.EnsureAuditPartitions(ctx, time.Now(), db.AuditPartitionsAhead); err != nil {
		t.Fatal(err)
	}
	if n := scalar[int64](t, pool, `SELECT count(*) FROM audit_events_default`); n != 0 {
		t.Fatalf("%d records left in the default partition", n)
	}
	verify("after maintenance moved them", "verified 38 events in 4 chains")

	exp, err := store.DropAuditPartitionsBefore(ctx, today.AddDate(0, 0, -2))
	if err != nil || len(exp.Dropped) != 3 {
		t.Fatalf("retention dropped %v (%v), want the 3 oldest days", exp.Dropped, err)
	}
	verify("after retention", "verified 20 events in 4 chains", "2 chains start after their first event")
}
