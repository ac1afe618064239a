package db

import (
	"context"
	"fmt"
	"strings"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
)

// SecretTables are the tables holding sealed secrets.
var SecretTables = []string{"ai_provider_keys", "user_ai_provider_keys"}

// CountNotSealedBy counts, per table, the secrets not sealed by key keyID (legacy plain rows
// included).
func (s *Store) CountNotSealedBy(ctx context.Context, keyID string) (map[string]int, error) {
	out := map[string]int{}
	for _, table := range SecretTables {
		var n int
		err := s.pool.QueryRow(ctx, `SELECT count(*) FROM `+pgx.Identifier{table}.Sanitize()+
			` WHERE api_key_key_id IS DISTINCT FROM $1`, keyID).Scan(&n)
		if err != nil {
			return nil, fmt.Errorf("count the secrets of %s to re-encrypt: %w", table, classify(err))
		}
		out[table] = n
	}
	return out, nil
}

// ResealBatch re-encrypts up to limit secrets of table that are not sealed by the sealing key, in
// one transaction, and says how many it did. Rows another transaction holds are skipped this time
// (SKIP LOCKED) and picked up by a later batch; an interrupted run loses nothing and a re-run goes
// on where it stopped.
func (s *Store) ResealBatch(ctx context.Context, table, sealingKeyID string, limit int) (int, error) {
	t := pgx.Identifier{table}.Sanitize()
	var n int
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `SELECT id, api_key, api_key_key_id FROM `+t+`
WHERE api_key_key_id IS DISTINCT FROM $1 ORDER BY id LIMIT $2 FOR UPDATE SKIP LOCKED`, sealingKeyID, limit)
		if err != nil {
			return classify(err)
		}
		type sealed struct {
			id         uuid.UUID
			ciphertext string
			keyID      *string
		}
		var batch []sealed
		for rows.Next() {
			var r sealed
			if err := rows.Scan(&r.id, &r.ciphertext, &r.keyID); err != nil {
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
			plain, err := s.open(table, r.id, r.ciphertext, r.keyID)
			if err != nil {
				return err
			}
			ciphertext, keyID, err := s.seal(ctx, tx, plain)
			if err != nil {
				return err
			}
			if _, err := tx.Exec(ctx, `UPDATE `+t+` SET api_key = $2, api_key_key_id = $3 WHERE id = $1`, r.id, ciphertext, keyID); err != nil {
				return classify(err)
			}
		}
		n = len(batch)
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("re-encrypt %s: %w", table, err)
	}
	return n, nil
}

// RetireUnusedEncryptionKeys removes the encryption_keys rows that no secret references any more,
// except keep, records the retirement in the audit trail, and returns the ids removed.
func (s *Store) RetireUnusedEncryptionKeys(ctx context.Context, keep string, resealed map[string]int) ([]string, error) {
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
		return changed{details: d}, nil
	})
	if err != nil {
		return nil, fmt.Errorf("retire unused encryption keys: %w", err)
	}
	return retired, nil
}
