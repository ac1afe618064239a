package main

import (
	"context"
	"fmt"
	"io"

	"github.com/resolverd/resolverd/internal/db"
	"github.com/resolverd/resolverd/internal/keyring"
)

func runKeys(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "rotate" {
		fmt.Fprintln(stderr, "usage: resolverd keys rotate --encryption-keys NEW,OLD[,...] [--batch-size N] [--format 2] [--database-url URL]")
		return errUsage
	}
	f := newFlags("keys rotate", getenv, stderr)
	dbURL := f.string("database-url", "", "PostgreSQL URL, postgres://user:password@host:5432/dbname")
	encKeys := f.string("encryption-keys", "", "the new key first, then every key that sealed stored secrets")
	batch := f.Int("batch-size", 500, "secrets re-encrypted per transaction")
	format := f.Int("format", keyring.FormatBound, "the sealed format to leave every secret in: 2 (bound to its row); 1 only before `migrate down` below version 10, with every replica stopped")
	if err := f.parse(args[1:]); err != nil {
		return err
	}
	if err := require("database-url", *dbURL); err != nil {
		return err
	}
	if *batch < 1 || *batch > 10_000 {
		return fmt.Errorf("--batch-size must be between 1 and 10000")
	}
	if *format != keyring.FormatBound && *format != keyring.FormatUnbound {
		return fmt.Errorf("--format must be 2 (bound to its row, the default) or 1 (before a downgrade below schema version 10)")
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
	return db.New(pool, kr).RotateSecrets(ctx, db.Target{KeyID: kr.IDs()[0], Format: *format}, *batch, stdout)
}
