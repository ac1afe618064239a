package db_test

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/resolverd/resolverd/internal/db"
	"github.com/resolverd/resolverd/internal/errs"
	"github.com/resolverd/resolverd/internal/pgtest"
	"github.com/resolverd/resolverd/internal/rbac"
)

// TestWorkloadIdentityLifecycle: put creates, put again replaces (only when allowed passes, given
// the scopes the binding carries), delete removes (likewise), and every change is audited with the
// workload identity that made it.
func TestWorkloadIdentityLifecycle(t *testing.T) {
	pool := pgtest.NewPool(t)
	store := db.New(pool, pgtest.Keyring)
	const subject = "system:serviceaccount:chat:worker"
	caller := rbac.Identity("spiffe://example.org/ns/ops/sa/admin", []rbac.Scope{rbac.All}, nil)
	ctx := rbac.WithPrincipal(context.Background(), caller)

	w, created, err := store.PutWorkloadIdentity(ctx, subject, []string{"chat:read"}, "chat workers", nil)
	if err != nil || !created || w.Subject != subject || !slices.Equal(w.Scopes, []string{"chat:read"}) || w.Description != "chat workers" {
		t.Fatalf("create = %+v, %v, %v", w, created, err)
	}
	refuse := errs.New(errs.MissingScope, "no", "scope", "chat:read")
	var seen []string
	_, _, err = store.PutWorkloadIdentity(ctx, subject, []string{"*"}, "", func(previous []string) error { seen = previous; return refuse })
	if !errors.Is(err, refuse) || !slices.Equal(seen, []string{"chat:read"}) {
		t.Fatalf("a refused update = %v (allowed saw %v), want the refusal after seeing [chat:read]", err, seen)
	}
	w, created, err = store.PutWorkloadIdentity(ctx, subject, []string{"chat:read", "model_config:read"}, "", nil)
	if err != nil || created || len(w.Scopes) != 2 || w.Description != "" || w.UpdatedAt.Before(w.CreatedAt) {
		t.Fatalf("update = %+v, %v, %v", w, created, err)
	}
	got, ok, err := store.WorkloadIdentity(context.Background(), subject)
	if err != nil || !ok || len(got.Scopes) != 2 {
		t.Fatalf("read back %+v %v %v", got, ok, err)
	}

	if err := store.DeleteWorkloadIdentity(ctx, subject, func([]string) error { return refuse }); !errors.Is(err, refuse) {
		t.Fatalf("a refused delete = %v", err)
	}
	if err := store.DeleteWorkloadIdentity(ctx, subject, nil); err != nil {
		t.Fatal(err)
	}
	if _, ok, err := store.WorkloadIdentity(context.Background(), subject); ok || err != nil {
		t.Fatalf("after delete: ok=%v err=%v", ok, err)
	}
	err = store.DeleteWorkloadIdentity(ctx, subject, nil)
	var e *errs.Error
	if !errors.As(err, &e) || e.Reason != errs.NotFound || e.Metadata["subject"] != subject {
		t.Fatalf("delete of a missing binding = %v, want NOT_FOUND with metadata subject", err)
	}

	rows, err := pool.Query(context.Background(), `SELECT action, token_id IS NULL, coalesce(subject, ''), details->>'subject', coalesce(details->>'previous_scopes', '')
FROM audit_events ORDER BY id`)
	if err != nil {
		t.Fatal(err)
	}
	type rec struct {
		Action                    string
		NoToken                   bool
		Subject, Target, Previous string
	}
	recs, err := pgx.CollectRows(rows, pgx.RowToStructByPos[rec])
	if err != nil {
		t.Fatal(err)
	}
	want := []rec{
		{"PutWorkloadIdentity", true, caller.Subject, subject, ""},
		{"PutWorkloadIdentity", true, caller.Subject, subject, "chat:read"},
		{"DeleteWorkloadIdentity", true, caller.Subject, subject, ""},
	}
	if !slices.Equal(recs, want) {
		t.Fatalf("audit trail %+v, want %+v (refused changes are not recorded)", recs, want)
	}
}

func TestWorkloadIdentityPagingAndConstraints(t *testing.T) {
	ctx := context.Background()
	store := db.New(pgtest.NewPool(t), pgtest.Keyring)
	for _, s := range []string{"cn:c", "spiffe://a", "cn:a", "system:serviceaccount:x:y", "cn:b"} {
		if _, _, err := store.PutWorkloadIdentity(ctx, s, []string{"chat:read"}, "", nil); err != nil {
			t.Fatal(err)
		}
	}
	var all []string
	page := db.Page[db.WorkloadIdentityPos]{Limit: 2}
	for range 10 {
		rows, err := store.ListWorkloadIdentities(ctx, page)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range rows {
			all = append(all, r.Subject)
		}
		if len(rows) < page.Limit {
			break
		}
		pos := rows[len(rows)-1].Pos()
		page.After = &pos
	}
	if want := []string{"cn:a", "cn:b", "cn:c", "spiffe://a", "system:serviceaccount:x:y"}; !slices.Equal(all, want) {
		t.Fatalf("pages gave %v, want %v", all, want)
	}
	// The database refuses what the validators refuse, for every writer.
	for _, bad := range []string{"", " padded", "line\nbreak", strings.Repeat("a", 1025)} {
		_, _, err := store.PutWorkloadIdentity(ctx, bad, []string{"chat:read"}, "", nil)
		if !errs.Is(err, errs.InvalidArgument) {
			t.Errorf("subject %q: %v, want INVALID_ARGUMENT", bad, err)
		}
	}
	if _, _, err := store.PutWorkloadIdentity(ctx, "cn:none", []string{}, "", nil); !errs.Is(err, errs.InvalidArgument) {
		t.Errorf("no scopes: %v, want INVALID_ARGUMENT", err)
	}
}

// TestWorkloadIdentityNotifications: every committed change of workload_identities names its
// subject on resolverd_changes (both sides of a rename), and a TRUNCATE asks for a flush.
func TestWorkloadIdentityNotifications(t *testing.T) {
	ctx := context.Background()
	url := pgtest.NewDatabase(t)
	pool := pgtest.Connect(t, url)
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "LISTEN "+db.ChangesChannel); err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{
		`INSERT INTO workload_identities (subject, scopes) VALUES ('cn:a', '{chat:read}')`,
		`UPDATE workload_identities SET scopes = '{*}'`,
		`UPDATE workload_identities SET subject = 'cn:b'`,
		`DELETE FROM workload_identities`,
		`TRUNCATE workload_identities`,
	} {
		if _, err := pool.Exec(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	var got []db.Change
	for len(got) < 6 {
		wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		n, err := conn.WaitForNotification(wctx)
		cancel()
		if err != nil {
			t.Fatalf("after %v: %v", got, err)
		}
		var c db.Change
		if err := json.Unmarshal([]byte(n.Payload), &c); err != nil {
			t.Fatal(err)
		}
		got = append(got, c)
	}
	const table = "workload_identities"
	want := []db.Change{
		{Table: table, Subject: "cn:a"},                                  // insert
		{Table: table, Subject: "cn:a"},                                  // scopes changed
		{Table: table, Subject: "cn:a"}, {Table: table, Subject: "cn:b"}, // renamed: both sides
		{Table: table, Subject: "cn:b"}, // deleted
		{Table: table, Flush: true},     // truncated
	}
	if !slices.Equal(got, want) {
		t.Fatalf("notifications %+v, want %+v", got, want)
	}
}
