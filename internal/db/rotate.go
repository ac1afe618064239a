package db

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/google/uuid"

	"github.com/resolverd/resolverd/internal/keyring"
)

// RotateSecrets is `resolverd keys rotate` (docs/CONTRACT.md §8.6): it re-seals every stored secret
// not yet as t wants it — sealed by another key, plain (legacy rows), or in the other format — in
// batches of batchSize rows, one transaction each, printing `table: done/total` to out; then it
// validates the CHECK that no secret is plain, and retires the encryption keys no secret uses.
// It is safe to interrupt and to run again.
func (s *Store) RotateSecrets(ctx context.Context, t Target, batchSize int, out io.Writer) error {
	totals, err := s.CountOffTarget(ctx, t)
	if err != nil {
		return err
	}
	format := "bound to its row"
	if t.Format == keyring.FormatUnbound {
		format = "format 1, not bound to its row, for a downgrade below schema version 10"
	}
	fmt.Fprintf(out, "re-encrypting under key %s (%s)\n", t.KeyID, format)
	resealed := map[string]int{}
	for _, table := range SecretTables {
		total := totals[table]
		after := uuid.Nil
		for {
			if err := ctx.Err(); err != nil {
				return fmt.Errorf("interrupted after %d of %d in %s; run it again to go on: %w", resealed[table], total, table, err)
			}
			n, last, err := s.ResealBatch(ctx, table, t, after, batchSize)
			if err != nil {
				return err
			}
			if n == 0 {
				break
			}
			after = last
			resealed[table] += n
			fmt.Fprintf(out, "%s: %d/%d\n", table, resealed[table], max(total, resealed[table]))
		}
	}
	left, err := s.CountOffTarget(ctx, t)
	if err != nil {
		return err
	}
	for _, table := range SecretTables {
		if n := left[table]; n > 0 {
			return fmt.Errorf("%d secret(s) of %s are still not sealed by %s in the wanted format (busy rows, or another writer sealing with another key or format): run it again", n, table, t.KeyID)
		}
	}
	already, err := s.ValidateSealedConstraints(ctx)
	if err != nil {
		return err
	}
	names := make([]string, len(SecretTables))
	for i, table := range SecretTables {
		names[i] = SealedConstraint(table)
	}
	fmt.Fprintf(out, "no plain secret is left: the CHECKs %s are validated", strings.Join(names, ", "))
	if len(already) == len(SecretTables) {
		fmt.Fprint(out, " (they already were; validating again changes nothing)")
	}
	fmt.Fprintln(out)
	retired, err := s.RetireUnusedEncryptionKeys(ctx, t.KeyID, resealed, t.Details)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "done: every secret is sealed by key %s", t.KeyID)
	if len(retired) > 0 {
		advice := t.Retired
		if advice == "" {
			advice = "remove them from --encryption-keys"
		}
		fmt.Fprintf(out, "; no secret uses key(s) %s any more: %s", strings.Join(retired, ", "), advice)
	}
	fmt.Fprintln(out)
	return nil
}
