package operations_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/google/uuid"
	"google.golang.org/grpc/codes"

	"github.com/resolverd/resolverd/internal/server"
	"github.com/resolverd/resolverd/internal/testenv"
	resolverv1 "github.com/resolverd/resolverd/proto/resolver/v1"
)

// TestCallTimeoutBoundsADatabaseWait: with PostgreSQL answering but a table held by another
// session's lock, a cold resolution and an admin change wait for it only until --call-timeout,
// then fail with DATABASE_UNAVAILABLE and leave no query behind; a warm resolution, which needs
// nothing from the database, is answered meanwhile; once the lock is gone everything works.
func TestCallTimeoutBoundsADatabaseWait(t *testing.T) {
	const timeout = 300 * time.Millisecond
	w := testenv.NewWorld(t, testenv.Options{Configure: func(c *server.Config) { c.CallTimeout = timeout }})
	ctx := context.Background()
	p := w.Provider("timeout-p", "openai", resolverv1.ByokPolicy_BYOK_POLICY_OPTIONAL)
	w.CentralKey(p.Id, "sk-timeout-1")
	cfg := w.Config(p.Id, "timeout-model", true)
	owner := w.User("timeout-owner")
	warm, cold := w.Chat(owner.Id, cfg.Id), w.Chat(owner.Id, cfg.Id)
	w.Sync(t) // the fixtures' own notifications are in: none will drop the warm entries below
	if _, err := w.Resolve(warm.Id, "", resolverv1.Purpose_PURPOSE_CHAT); err != nil {
		t.Fatal(err)
	}

	// Another session takes the chats table and keeps it.
	tx, err := w.Pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tx.Rollback(ctx) }()
	if _, err := tx.Exec(ctx, `LOCK TABLE chats IN ACCESS EXCLUSIVE MODE`); err != nil {
		t.Fatal(err)
	}

	start := time.Now()
	_, err = w.Resolve(cold.Id, "", resolverv1.Purpose_PURPOSE_CHAT)
	took := time.Since(start)
	testenv.WantReason(t, err, codes.Unavailable, "DATABASE_UNAVAILABLE")
	if took < timeout || took > timeout+2*time.Second {
		t.Errorf("cold resolution failed after %s, want about %s", took, timeout)
	}

	start = time.Now()
	_, err = w.Admin.PutChat(w.AsAdmin(), &resolverv1.PutChatRequest{Id: uuid.NewString(), OwnerId: owner.Id, ModelConfigId: cfg.Id})
	took = time.Since(start)
	testenv.WantReason(t, err, codes.Unavailable, "DATABASE_UNAVAILABLE")
	if took < timeout || took > timeout+2*time.Second {
		t.Errorf("PutChat failed after %s, want about %s", took, timeout)
	}

	start = time.Now()
	if res, err := w.Resolve(warm.Id, "", resolverv1.Purpose_PURPOSE_CHAT); err != nil || res.GetModelConfig().GetId() != cfg.Id {
		t.Fatalf("warm resolution under the lock: %v, %v", res, err)
	}
	if took := time.Since(start); took >= timeout {
		t.Errorf("the warm resolution waited %s", took)
	}

	// pgx cancelled the queries the deadline cut short: nothing is still waiting on the lock.
	testenv.Within(t, 2*time.Second, "resolverd's queries cancelled", func() error {
		var waiting int
		if err := tx.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity
WHERE pid <> pg_backend_pid() AND datname = current_database() AND wait_event_type = 'Lock'`).Scan(&waiting); err != nil {
			return err
		}
		if waiting > 0 {
			return fmt.Errorf("%d resolverd backends still wait on the lock", waiting)
		}
		return nil
	})

	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	if res, err := w.Resolve(cold.Id, "", resolverv1.Purpose_PURPOSE_CHAT); err != nil || res.GetModelConfig().GetId() != cfg.Id {
		t.Fatalf("cold resolution after the lock: %v, %v", res, err)
	}
	w.Chat(owner.Id, cfg.Id)
}
