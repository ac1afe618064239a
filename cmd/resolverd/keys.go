package main

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/resolverd/resolverd/internal/db"
	"github.com/resolverd/resolverd/internal/keyring"
)

func runKeys(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "rotate" {
		fmt.Fprintln(stderr, "usage: resolverd keys rotate --encryption-keys NEW,OLD[,...] [--batch-size N] [--database-url URL]")
		return errUsage
	}
	f := newFlags("keys rotate", getenv, stderr)
	dbURL := f.string("database-url", "", "PostgreSQL URL, postgres://user:password@host:5432/dbname")
	encKeys := f.string("encryption-keys", "", "the new key first, then every key that sealed stored secrets")
	batch := f.Int("batch-size", 500, "secrets re-encrypted per transaction")
	if err := f.parse(args[1:]); err != nil {
		return err
	}
	if err := require("database-url", *dbURL); err != nil {
		return err
	}
	if *batch < 1 || *batch > 10_000 {
		return fmt.Errorf("--batch-size must be between 1 and 10000")
	}
	kr, err := keyring.Parse(*encKeys)
	if err != nil {
		return err
	}
	pool, err := db.Connect(ctx, *dbURL)
	if err != nil {
		return err
	}
	defer pool.Close()
	store := db.New(pool, kr)
	sealing := kr.IDs()[0]
	totals, err := store.CountNotSealedBy(ctx, sealing)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "re-encrypting under key %s\n", sealing)
	resealed := map[string]int{}
	for _, table := range db.SecretTables {
		total := totals[table]
		for {
			if err := ctx.Err(); err != nil {
				return fmt.Errorf("interrupted after %d of %d in %s; run it again to go on: %w", resealed[table], total, table, err)
			}
			n, err := store.ResealBatch(ctx, table, sealing, *batch)
			if err != nil {
				return err
			}
			if n == 0 {
				break
			}
			resealed[table] += n
			fmt.Fprintf(stdout, "%s: %d/%d\n", table, resealed[table], max(total, resealed[table]))
		}
	}
	left, err := store.CountNotSealedBy(ctx, sealing)
	if err != nil {
		return err
	}
	for table, n := range left {
		if n > 0 {
			return fmt.Errorf("%d secret(s) of %s are still not sealed by %s (busy rows or another writer sealing with an older key): run it again", n, table, sealing)
		}
	}
	retired, err := store.RetireUnusedEncryptionKeys(ctx, sealing, resealed)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "done: every secret is sealed by key %s", sealing)
	if len(retired) > 0 {
		fmt.Fprintf(stdout, "; no secret uses key(s) %s any more: remove them from --encryption-keys", strings.Join(retired, ", "))
	}
	fmt.Fprintln(stdout)
	return nil
}
