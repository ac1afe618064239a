package db

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/resolverd/resolverd/internal/keyring"
)

// Target is what `resolverd keys rotate` leaves every stored secret as: sealed by one encryption
// key, in one format.
type Target struct {
	KeyID  string
	Format int // keyring.FormatBound, or keyring.FormatUnbound before a downgrade below version 10
	// Details are added to the run's KeysRotate audit record: the KMS keys it involved, the data
	// keys it created or re-wrapped.
	Details map[string]string
	// Retired says what to do with the keys no secret uses any more; empty: remove them from
	// --encryption-keys.
	Retired string
}

// offTarget selects the rows of a secret table that are not yet as t wants them ($1 the key id,
// $2 the bound prefix pattern, $3 whether the value must be bound): sealed by another key, plain
// (a NULL key id), or in the other format.
const offTarget = `(api_key_key_id IS DISTINCT FROM $1 OR (api_key LIKE $2) <> $3)`

func (t Target) args() []any {
	return []any{t.KeyID, keyring.BoundPrefix + "%", t.Format != keyring.FormatUnbound}
}

// CountOffTarget counts, per table, the secrets not yet as t wants them (legacy plain rows
// included).
func (s *Store) CountOffTarget(ctx context.Context, t Target) (map[string]int, error) {
	out := map[string]int{}
	for _, table := range SecretTables {
		var n int
		err := s.pool.QueryRow(ctx, `SELECT count(*) FROM `+pgx.Identifier{table}.Sanitize()+` WHERE `+offTarget, t.args()...).Scan(&n)
		if err != nil {
			return nil, fmt.Errorf("count the secrets of %s to re-encrypt: %w", table, classify(err))
		}
		out[table] = n
	}
	return out, nil
}

// ResealBatch re-seals up to limit secrets of table with ids above after that are not yet as t
// wants them, each for its own place, in one transaction; it returns how many it did and the last
// id it saw (the next batch's after). Rows another transaction holds are skipped (SKIP LOCKED) and
// left for a later run; an interrupted run loses nothing and a re-run goes on where it stopped.
func (s *Store) ResealBatch(ctx context.Context, table string, t Target, after uuid.UUID, limit int) (int, uuid.UUID, error) {
	if table != centralKeysTable && table != userKeysTable {
		return 0, after, fmt.Errorf("re-encrypt %s: not a table of secrets", table)
	}
	owner := "NULL::uuid"
	if table == userKeysTable {
		owner = "user_id"
	}
	provider := "provider_id"
	if table == userKeysTable {
		provider = "ai_provider_id"
	}
	tbl := pgx.Identifier{table}.Sanitize()
	var n int
	last := after
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `SELECT id, `+provider+`, `+owner+`, api_key, api_key_key_id FROM `+tbl+`
WHERE `+offTarget+` AND id > $4 ORDER BY id LIMIT $5 FOR UPDATE SKIP LOCKED`, append(t.args(), after, limit)...)
		if err != nil {
			return classify(err)
		}
		type stored struct {
			id, provider uuid.UUID
			user         *uuid.UUID
			sealed       string
			keyID        *string
		}
		var batch []stored
		for rows.Next() {
			var r stored
			if err := rows.Scan(&r.id, &r.provider, &r.user, &r.sealed, &r.keyID); err != nil {
				rows.Close()
				return classify(err)
			}
			batch = append(batch, r)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return classify(err)
		}
		for _, r := range batch {
			at := centralPlace(r.id, r.provider)
			if r.user != nil {
				at = userPlace(r.id, *r.user, r.provider)
			}
			plain, err := s.open(ctx, at, r.sealed, r.keyID)
			if err != nil {
				return notReopened(r.id, r.keyID, err)
			}
			sealed, keyID, err := s.sealAs(ctx, tx, plain, at, t.Format)
			if err != nil {
				return err
			}
			if _, err := tx.Exec(ctx, `UPDATE `+tbl+` SET api_key = $2, api_key_key_id = $3 WHERE id = $1`, r.id, sealed, keyID); err != nil {
				return classify(err)
			}
			last = r.id
		}
		n = len(batch)
		return nil
	})
	if err != nil {
		return 0, after, fmt.Errorf("re-encrypt %s: %w", table, err)
	}
	return n, last, nil
}

// SealedConstraint is the CHECK of migration 10 on table: no plain (NULL key id) secret. It is
// added NOT VALID, so legacy rows stay until `resolverd keys rotate` seals them and validates it.
func SealedConstraint(table string) string { return table + "_api_key_sealed" }

// ValidateSealedConstraints validates SealedConstraint on every table of secrets, once no plain row
// is left, and returns the tables whose constraint was already valid (validating again is a no-op).
func (s *Store) ValidateSealedConstraints(ctx context.Context) (alreadyValid []string, err error) {
	for _, table := range SecretTables {
		var valid bool
		err := s.pool.QueryRow(ctx, `SELECT convalidated FROM pg_constraint WHERE conname = $1 AND conrelid = $2::regclass`,
			SealedConstraint(table), table).Scan(&valid)
		if notFound(err) {
			return nil, fmt.Errorf("the constraint %s is missing: run `resolverd migrate up` first", SealedConstraint(table))
		}
		if err != nil {
			return nil, fmt.Errorf("read the constraint %s: %w", SealedConstraint(table), classify(err))
		}
		if valid {
			alreadyValid = append(alreadyValid, table)
			continue
		}
		if _, err := s.pool.Exec(ctx, `ALTER TABLE `+pgx.Identifier{table}.Sanitize()+` VALIDATE CONSTRAINT `+
			pgx.Identifier{SealedConstraint(table)}.Sanitize()); err != nil {
			return nil, fmt.Errorf("validate the constraint %s: %w", SealedConstraint(table), classify(err))
		}
	}
	return alreadyValid, nil
}

// RetireUnusedEncryptionKeys removes the encryption_keys rows that no secret references any more,
// except keep, records the retirement in the audit trail, and returns the ids removed.
// extra is added to the record's details.
func (s *Store) RetireUnusedEncryptionKeys(ctx context.Context, keep string, resealed map[string]int, extra map[string]string) ([]string, error) {
	var retired []string
	err := s.change(ctx, "KeysRotate", func(tx pgx.Tx) (changed, error) {
		rows, err := tx.Query(ctx, `DELETE FROM encryption_keys e WHERE e.id <> $1
AND NOT EXISTS (SELECT 1 FROM ai_provider_keys k WHERE k.api_key_key_id = e.id)
AND NOT EXISTS (SELECT 1 FROM user_ai_provider_keys k WHERE k.api_key_key_id = e.id) RETURNING e.id`, keep)
		if err != nil {
			return changed{}, classify(err)
		}
		if retired, err = pgx.CollectRows(rows, pgx.RowTo[string]); err != nil {
			return changed{}, classify(err)
		}
		d := map[string]string{"sealing_key_id": keep, "retired_key_ids": strings.Join(retired, " ")}
		for table, n := range resealed {
			d["resealed_"+table] = fmt.Sprint(n)
		}
		for k, v := range extra {
			d[k] = v
		}
		return changed{details: d}, nil
	})
	if err != nil {
		return nil, fmt.Errorf("retire unused encryption keys: %w", err)
	}
	return retired, nil
}

// notReopened is keys rotate's refusal of a secret that does not open (docs/CONTRACT.md §8.6): it
// names the row and says what the operator can do, in the command's words rather than a server's.
func notReopened(id uuid.UUID, keyID *string, err error) error {
	if errors.Is(err, keyring.ErrKeyNotConfigured) && keyID != nil {
		return fmt.Errorf("the stored API key %s is sealed by encryption key %s, which this run was not given: "+
			"add that key (--from-encryption-keys, or --from-kms-key-uri if a KMS key wrapped it) and run it again; "+
			"if it is lost, delete or replace the API key %s first", id, *keyID, id)
	}
	sealedBy := ""
	if keyID != nil {
		sealedBy = " under encryption key " + *keyID
	}
	return fmt.Errorf("the stored API key %s does not open where it is stored%s: either a key with that id was given "+
		"with other material (check --encryption-keys / --from-encryption-keys), or the value was moved or edited "+
		"outside resolverd (then delete or replace the API key first); then run it again: %w", id, sealedBy, err)
}
