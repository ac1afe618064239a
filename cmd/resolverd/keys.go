package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/resolverd/resolverd/internal/db"
	"github.com/resolverd/resolverd/internal/keyring"
	"github.com/resolverd/resolverd/internal/kms"
)

const keysUsage = "usage: resolverd keys rotate (--encryption-keys NEW[,OLD...] | --kms-key-uri URI) [--from-encryption-keys OLD] [--from-kms-key-uri OLD_URI] [--batch-size N] [--format 2] [--database-url URL]"

// runKeys is `resolverd keys rotate` (docs/CONTRACT.md §8.6): the target (--encryption-keys, whose
// first key seals, or --kms-key-uri, whose sealing data-encryption key does) seals every stored
// secret; the sources (the target's other keys, --from-encryption-keys, --from-kms-key-uri) only
// open. With --kms-key-uri and --from-kms-key-uri, the data keys the old KMS key wraps are first
// re-wrapped under the new one, which re-seals nothing.
func runKeys(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "rotate" {
		fmt.Fprintln(stderr, keysUsage)
		return errUsage
	}
	f := newFlags("keys rotate", getenv, stderr)
	dbURL := f.string("database-url", "", "PostgreSQL URL, postgres://user:password@host:5432/dbname")
	keys := addKeyFlags(f, sealing, "the new key first (it seals), then any key that sealed stored secrets")
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
	src, err := keys.open(ctx, sealing)
	if err != nil {
		return err
	}
	defer src.Close()
	if *format == keyring.FormatUnbound && src.targetKMS != nil {
		return errors.New("--format 1 prepares a downgrade below schema version 10, which has no data-encryption keys: use --encryption-keys as the target")
	}
	pool, err := db.Connect(ctx, *dbURL)
	if err != nil {
		return err
	}
	defer pool.Close()

	details := map[string]string{}
	if src.targetKMS != nil && src.fromKMS != nil {
		ids, err := kms.Rewrap(ctx, pool, src.fromKMS, src.targetKMS)
		if err != nil {
			return err
		}
		details["from_kms_key"], details["rewrapped_data_key_ids"] = src.fromKMS.Name(), strings.Join(ids, " ")
		if len(ids) == 0 {
			fmt.Fprintf(stdout, "the KMS key %s wraps no data-encryption key (any more): nothing to re-wrap\n", src.fromKMS.Name())
		} else {
			fmt.Fprintf(stdout, "re-wrapped data-encryption key(s) %s under the KMS key %s (they were wrapped by %s)\n",
				strings.Join(ids, ", "), src.targetKMS.Name(), src.fromKMS.Name())
		}
	}
	kr, info, err := src.ring(ctx, pool)
	if err != nil {
		return err
	}
	if info.kmsKey != "" {
		details["kms_key"] = info.kmsKey
		if info.created != "" {
			details["created_data_key_id"] = info.created
			fmt.Fprintf(stdout, "created data-encryption key %s, wrapped by the KMS key %s: it seals from now on\n", info.created, info.kmsKey)
		} else {
			fmt.Fprintf(stdout, "the sealing data-encryption key %s is wrapped by the KMS key %s\n", kr.IDs()[0], info.kmsKey)
		}
	}
	if src.fromKMS != nil && src.targetKMS == nil {
		details["from_kms_key"] = src.fromKMS.Name()
	}
	if len(info.fromIDs) > 0 {
		details["from_key_ids"] = strings.Join(info.fromIDs, " ")
	}
	t := db.Target{KeyID: kr.IDs()[0], Format: *format, Details: details}
	switch {
	case src.from != nil || src.fromKMS != nil:
		t.Retired = "serve needs only the new keys now: drop --from-encryption-keys and --from-kms-key-uri (keep them for `resolverd audit verify` while the trail holds events they keyed)"
	case src.targetKMS != nil:
		t.Retired = "they stay in data_encryption_keys, which `resolverd audit verify --kms-key-uri` still reads"
	}
	return db.New(pool, kr).RotateSecrets(ctx, t, *batch, stdout)
}
