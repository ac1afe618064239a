package main

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/resolverd/resolverd/internal/db"
	"github.com/resolverd/resolverd/internal/keyring"
	"github.com/resolverd/resolverd/internal/pgtest"
)

// TestMigrateDownKeepsTheDataKeysTheTrailNeeds: after moving out of the KMS no secret is sealed by
// a data key any more, but the audit events written on the KMS key are keyed by it, and
// data_encryption_keys holds its only copy. Going below version 14 (which drops that table) is
// refused in one line, changing nothing, so `audit verify --kms-key-uri` still checks them; once
// retention has removed those events, it goes down.
func TestMigrateDownKeepsTheDataKeysTheTrailNeeds(t *testing.T) {
	ctx := context.Background()
	url := pgtest.NewDatabase(t)
	uri, _ := localKMSKey(t)
	if code, _, errOut := cli(ctx, map[string]string{"RESOLVER_DATABASE_URL": url, "RESOLVER_KMS_KEY_URI": uri},
		"token", "create", "--name", "on-the-kms", "--scope", "*"); code != 0 {
		t.Fatal(errOut)
	}
	pool := pgtest.Connect(t, url)
	dek := sealingDataKey(t, pool)
	next := keyring.Generate()
	if code, out, errOut := cli(ctx, map[string]string{"RESOLVER_DATABASE_URL": url, "RESOLVER_ENCRYPTION_KEYS": next, "RESOLVER_FROM_KMS_KEY_URI": uri},
		"keys", "rotate"); code != 0 {
		t.Fatalf("keys rotate out of the KMS: %s%s", out, errOut)
	}
	keyed := scalar[int](t, pool, `SELECT count(*) FROM audit_events WHERE mac_key_id = $1`, dek)
	if keyed == 0 {
		t.Fatal("no audit event is keyed by the data key")
	}
	before := scalar[int64](t, pool, `SELECT max(version_id) FROM goose_db_version`)

	code, out, errOut := cli(ctx, map[string]string{"RESOLVER_DATABASE_URL": url}, "migrate", "down", "--to", "13")
	if code != 1 || strings.Count(errOut, "\n") != 1 || !strings.Contains(errOut, "cannot go below version 14") ||
		!strings.Contains(errOut, fmt.Sprintf("%d audit event(s)", keyed)) || !strings.Contains(errOut, "nothing was changed") {
		t.Fatalf("migrate down below 14 with events keyed by a data key: code %d\n%s%s", code, out, errOut)
	}
	if v := scalar[int64](t, pool, `SELECT max(version_id) FROM goose_db_version`); v != before {
		t.Fatalf("the refused down went from version %d to %d", before, v)
	}
	both := map[string]string{"RESOLVER_DATABASE_URL": url, "RESOLVER_ENCRYPTION_KEYS": next, "RESOLVER_KMS_KEY_URI": uri}
	if code, out, errOut := cli(ctx, both, "audit", "verify"); code != 0 {
		t.Fatalf("audit verify after the refused down: code %d\n%s%s", code, out, errOut)
	}

	exec(t, pool, `DELETE FROM audit_events WHERE mac_key_id = $1`, dek) // as retention would
	if code, out, errOut := cli(ctx, map[string]string{"RESOLVER_DATABASE_URL": url}, "migrate", "down", "--to", "13"); code != 0 {
		t.Fatalf("migrate down once no event needs the data keys: code %d\n%s%s", code, out, errOut)
	}
	if v, err := db.SchemaVersion(ctx, pool); err != nil || v != 13 {
		t.Fatalf("schema version %d after going down to 13 (%v)", v, err)
	}
}
