package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/resolverd/resolverd/internal/auditchain"
	"github.com/resolverd/resolverd/internal/db"
)

// errTampered is verify's failure once it has said what it found: exit 1.
var errTampered = errors.New("the audit trail does not verify")

// progressEvery is how often verify reports progress on stderr.
var progressEvery = 2 * time.Second

// runAudit is `resolverd audit verify` (docs/CONTRACT.md §8.9): walk every chain of the audit
// trail and name the first event that was edited, deleted or inserted.
func runAudit(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "verify" {
		fmt.Fprintln(stderr, "usage: resolverd audit verify [--encryption-keys KEYS] [--kms-key-uri URI] [--since RFC3339] [--database-url URL]")
		return errUsage
	}
	f := newFlags("audit verify", getenv, stderr)
	dbURL := f.string("database-url", "", "PostgreSQL URL, postgres://user:password@host:5432/dbname")
	keys := addKeyFlags(f, verifying, "the encryption keys, as serve takes them, plus every older key that keyed events still in the trail; may be given with --kms-key-uri")
	since := f.String("since", "", "verify only the events that occurred at or after this time (RFC 3339, e.g. 2026-01-02T15:04:05Z)")
	if err := f.parse(args[1:]); err != nil {
		return err
	}
	if err := require("database-url", *dbURL); err != nil {
		return err
	}
	var from time.Time
	if *since != "" {
		t, err := time.Parse(time.RFC3339, *since)
		if err != nil {
			return fmt.Errorf("--since %q is not an RFC 3339 time such as 2026-01-02T15:04:05Z", *since)
		}
		from = t
	}
	src, err := keys.open(ctx, verifying)
	if err != nil {
		return err
	}
	defer src.Close()
	pool, err := db.Connect(ctx, *dbURL)
	if err != nil {
		return err
	}
	defer pool.Close()
	kr, _, err := src.ring(ctx, pool)
	if err != nil {
		return err
	}

	total := db.EstimateAuditEvents(ctx, pool)
	v := auditchain.NewVerifier(kr)
	var read int64
	start, last := time.Now(), time.Now()
	err = db.WalkAuditTrail(ctx, pool, from, func(r auditchain.Record) error {
		read++
		if now := time.Now(); now.Sub(last) >= progressEvery {
			last = now
			if total > 0 {
				fmt.Fprintf(stderr, "read %d of about %d events (%s)\n", read, max(total, read), now.Sub(start).Round(time.Second))
			} else {
				fmt.Fprintf(stderr, "read %d events (%s)\n", read, now.Sub(start).Round(time.Second))
			}
		}
		return v.Add(r)
	})
	var problem *auditchain.Problem
	if errors.As(err, &problem) {
		fmt.Fprintf(stdout, "event %d was %s: %s\n", problem.EventID, problem.Kind, problem.Detail)
		fmt.Fprintf(stdout, "(%d events in %d chains verified before it)\n", v.Events, v.Chains)
		return fmt.Errorf("%w: event %d was %s", errTampered, problem.EventID, problem.Kind)
	}
	var missing *auditchain.MissingKeyError
	if errors.As(err, &missing) {
		return fmt.Errorf("event %d is keyed by encryption key %s, which the keys given do not include: add it to --encryption-keys, or give the --kms-key-uri whose data-encryption key it is (both may be given; docs/OPERATIONS.md)", missing.EventID, missing.KeyID)
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "verified %d events in %d chains\n", v.Events, v.Chains)
	if v.Unchained > 0 {
		fmt.Fprintf(stdout, "%d older events are in no chain (written before the chains existed): not covered\n", v.Unchained)
	}
	if v.Truncated > 0 {
		fmt.Fprintf(stdout, "%d chains start after their first event (removed by retention, or before --since)\n", v.Truncated)
	}
	return nil
}
