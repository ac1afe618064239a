package cachedstore_test

import (
	"context"
	"slices"
	"testing"

	"github.com/resolverd/resolverd/internal/cachedstore"
	"github.com/resolverd/resolverd/internal/db"
	"github.com/resolverd/resolverd/internal/pgtest"
)

// TestWorkloadIdentitiesAreCachedAndDropped: a binding (and the absence of one) is served from
// memory once read; a change notification naming its subject, or this replica's own write, drops
// it, so the next read sees the database again.
func TestWorkloadIdentitiesAreCachedAndDropped(t *testing.T) {
	ctx := context.Background()
	pool := pgtest.NewPool(t)
	store := db.New(pool, pgtest.Keyring)
	s := cachedstore.New(store, cachedstore.Options{})
	s.Connected()
	const subject = "spiffe://example.org/ns/chat/sa/worker"

	lookup := func() (db.WorkloadIdentity, bool) {
		t.Helper()
		w, ok, err := s.WorkloadIdentity(ctx, subject)
		if err != nil {
			t.Fatal(err)
		}
		return w, ok
	}
	if _, ok := lookup(); ok {
		t.Fatal("a binding before any was made")
	}
	// As psql would: the cache still knows "there is none" until the notification comes.
	if _, err := pool.Exec(ctx, `INSERT INTO workload_identities (subject, scopes) VALUES ($1, '{chat:read}')`, subject); err != nil {
		t.Fatal(err)
	}
	misses := s.Stats().Misses
	if _, ok := lookup(); ok || s.Stats().Misses != misses {
		t.Fatal("the absence of a binding was not served from memory")
	}
	s.Changed(db.Change{Table: "workload_identities", Subject: subject})
	if w, ok := lookup(); !ok || !slices.Equal(w.Scopes, []string{"chat:read"}) {
		t.Fatalf("after the notification: %+v %v", w, ok)
	}
	hits := s.Stats().Hits
	if _, ok := lookup(); !ok || s.Stats().Hits != hits+1 {
		t.Fatal("a known binding was not served from memory")
	}
	// Another subject's notification leaves this one cached.
	s.Changed(db.Change{Table: "workload_identities", Subject: "cn:other"})
	if _, ok := lookup(); !ok || s.Stats().Hits != hits+2 {
		t.Fatal("a notification for another subject dropped this one")
	}
	// This replica's own write drops the entry at once.
	if _, _, err := s.PutWorkloadIdentity(ctx, subject, []string{"*"}, "", nil); err != nil {
		t.Fatal(err)
	}
	if w, _ := lookup(); !slices.Equal(w.Scopes, []string{"*"}) {
		t.Fatalf("own update not seen: %v", w.Scopes)
	}
	if err := s.DeleteWorkloadIdentity(ctx, subject, nil); err != nil {
		t.Fatal(err)
	}
	if _, ok := lookup(); ok {
		t.Fatal("own delete not seen")
	}
	// A notification without a subject (or a TRUNCATE's flush) drops every binding.
	if _, err := pool.Exec(ctx, `INSERT INTO workload_identities (subject, scopes) VALUES ($1, '{chat:read}')`, subject); err != nil {
		t.Fatal(err)
	}
	s.Changed(db.Change{Table: "workload_identities", Flush: true})
	if _, ok := lookup(); !ok {
		t.Fatal("a flush left the absence cached")
	}
}
