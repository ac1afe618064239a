package operations_test

import (
	"context"
	"testing"
	"time"

	"google.golang.org/grpc/codes"

	"github.com/resolverd/resolverd/internal/audit"
	"github.com/resolverd/resolverd/internal/server"
	"github.com/resolverd/resolverd/internal/testenv"
	resolverv1 "github.com/resolverd/resolverd/proto/resolver/v1"
)

// TestAReportThatCannotBeRecordedIsNotApplied: while the audit trail cannot take records (its
// buffer is full), a worker's report is refused with DATABASE_UNAVAILABLE — and then it must not
// have been applied either (docs/CONTRACT.md §17: every report is in the audit trail), so that a
// worker (or the Go client, which retries UNAVAILABLE) may send it again without doubling it.
func TestAReportThatCannotBeRecordedIsNotApplied(t *testing.T) {
	w := testenv.NewWorld(t, testenv.Options{Configure: func(c *server.Config) {
		c.Audit = audit.Options{Capacity: 8, BatchSize: 4}
	}})
	p := w.Provider("unrecorded", "openai", resolverv1.ByokPolicy_BYOK_POLICY_DISABLED)
	key := w.CentralKey(p.Id, "sk-unrecorded")
	cfg := w.Config(p.Id, "unrecorded", true)
	chat := w.Chat(w.User("unrecorded-u").Id, cfg.Id)
	ctx := context.Background()

	// Hold the audit trail: its writer blocks, the buffer fills.
	tx, err := w.Pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx) //nolint:errcheck
	if _, err := tx.Exec(ctx, `LOCK TABLE audit_events IN ACCESS EXCLUSIVE MODE`); err != nil {
		t.Fatal(err)
	}
	full := false
	for i := 0; i < 200 && !full; i++ {
		_, err := w.Resolve(chat.Id, "", resolverv1.Purpose_PURPOSE_CHAT)
		if err != nil {
			testenv.WantReason(t, err, codes.Unavailable, "DATABASE_UNAVAILABLE")
			full = true
		}
	}
	if !full {
		t.Fatal("the audit buffer never filled")
	}

	_, err = w.Report(key.Id, resolverv1.CredentialOutcome_CREDENTIAL_OUTCOME_UNAUTHORIZED, 0)
	testenv.WantReason(t, err, codes.Unavailable, "DATABASE_UNAVAILABLE")
	var suspended bool
	if err := w.Pool.QueryRow(ctx, `SELECT suspended_at IS NOT NULL FROM ai_provider_keys WHERE id = $1`, key.Id).Scan(&suspended); err != nil {
		t.Fatal(err)
	}
	if suspended {
		t.Fatal("the refused report suspended the key anyway: applied, not recorded, and the worker told it failed")
	}

	// Once the trail takes records again, the same report is applied (and recorded).
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	testenv.Within(t, 10*time.Second, "the report, once the trail is back", func() error {
		_, err := w.Report(key.Id, resolverv1.CredentialOutcome_CREDENTIAL_OUTCOME_UNAUTHORIZED, 0)
		return err
	})
	if err := w.Pool.QueryRow(ctx, `SELECT suspended_at IS NOT NULL FROM ai_provider_keys WHERE id = $1`, key.Id).Scan(&suspended); err != nil {
		t.Fatal(err)
	}
	if !suspended {
		t.Error("the report applied after the outage did not suspend the key")
	}
}
