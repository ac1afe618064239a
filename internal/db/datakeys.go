package db

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// DataKey is a row of data_encryption_keys (migration 14, docs/CONTRACT.md §7.1): a
// data-encryption key as a KMS key wrapped it. internal/kms wraps and unwraps; this package only
// stores.
type DataKey struct {
	// ID is the keyring id of the unwrapped key (api_key_key_id of what it seals).
	ID string
	// Wrapped is the key encrypted by the KMS key: opaque bytes only that KMS key opens.
	Wrapped []byte
	// KMSKey names the KMS key that wrapped it, never secretly (internal/kms.Key.Name).
	KMSKey string
	// Sealing: the data key that seals new values. At most one row has it.
	Sealing   bool
	CreatedAt time.Time
	WrappedAt time.Time
}

// dataKeysLock serialises the writers of data_encryption_keys: replicas creating the first data
// key at once, and keys rotate re-wrapping them.
const dataKeysLock = `SELECT pg_advisory_xact_lock(hashtext('resolverd.data_encryption_keys'))`

const dataKeyCols = `id, wrapped, kms_key, sealing, created_at, wrapped_at`

func scanDataKey(row pgx.CollectableRow) (DataKey, error) {
	var k DataKey
	err := row.Scan(&k.ID, &k.Wrapped, &k.KMSKey, &k.Sealing, &k.CreatedAt, &k.WrappedAt)
	return k, err
}

// dataKeysErr names the migration when the table is missing (a schema before version 14).
func dataKeysErr(what string, err error) error {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "42P01" { // undefined_table
		return fmt.Errorf("%s: the database has no data_encryption_keys table (schema before version 14): run `resolverd migrate up` first", what)
	}
	return fmt.Errorf("%s: %w", what, classify(err))
}

// DataKeys returns every stored data key, the sealing one first, then the newest first.
func DataKeys(ctx context.Context, pool *pgxpool.Pool) ([]DataKey, error) {
	rows, err := pool.Query(ctx, `SELECT `+dataKeyCols+` FROM data_encryption_keys ORDER BY sealing DESC, created_at DESC, id`)
	if err != nil {
		return nil, dataKeysErr("read the data-encryption keys", err)
	}
	keys, err := pgx.CollectRows(rows, scanDataKey)
	if err != nil {
		return nil, dataKeysErr("read the data-encryption keys", err)
	}
	return keys, nil
}

// CreateSealingDataKey stores the data key that newKey makes (it draws a key and wraps it with
// the KMS key) as the sealing one, unless a sealing data key exists already: replicas starting
// together on an empty table queue on an advisory lock, and only the first makes one; the others
// find it. It reports whether this call created it. newKey runs inside the transaction, holding the
// lock (one KMS call, at start).
func CreateSealingDataKey(ctx context.Context, pool *pgxpool.Pool, newKey func(context.Context) (DataKey, error)) (created bool, err error) {
	err = pgx.BeginTxFunc(ctx, pool, pgx.TxOptions{}, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, dataKeysLock); err != nil {
			return err
		}
		var exists bool
		if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM data_encryption_keys WHERE sealing)`).Scan(&exists); err != nil {
			return err
		}
		if exists {
			return nil
		}
		k, err := newKey(ctx)
		if err != nil {
			return errKMS{err}
		}
		if _, err := tx.Exec(ctx, `INSERT INTO data_encryption_keys (id, wrapped, kms_key, sealing) VALUES ($1, $2, $3, true)`,
			k.ID, k.Wrapped, k.KMSKey); err != nil {
			return err
		}
		created = true
		return nil
	})
	var kmsErr errKMS
	if errors.As(err, &kmsErr) {
		return false, kmsErr.err
	}
	if err != nil {
		return false, dataKeysErr("store a new data-encryption key", err)
	}
	return created, nil
}

// errKMS carries a failure of the KMS out of a transaction unchanged.
type errKMS struct{ err error }

func (e errKMS) Error() string { return e.err.Error() }
func (e errKMS) Unwrap() error { return e.err }

// RewrapDataKeys replaces, in one transaction, every data key wrapped by KMS key from with what
// rewrap returns (the same key wrapped by KMS key to), and returns their ids. The keys themselves,
// their ids and what they sealed do not change: no secret is re-sealed.
func RewrapDataKeys(ctx context.Context, pool *pgxpool.Pool, from, to string, rewrap func(context.Context, DataKey) ([]byte, error)) ([]string, error) {
	var ids []string
	err := pgx.BeginTxFunc(ctx, pool, pgx.TxOptions{}, func(tx pgx.Tx) error {
		ids = nil
		if _, err := tx.Exec(ctx, dataKeysLock); err != nil {
			return err
		}
		rows, err := tx.Query(ctx, `SELECT `+dataKeyCols+` FROM data_encryption_keys WHERE kms_key = $1 ORDER BY id FOR UPDATE`, from)
		if err != nil {
			return err
		}
		keys, err := pgx.CollectRows(rows, scanDataKey)
		if err != nil {
			return err
		}
		for _, k := range keys {
			wrapped, err := rewrap(ctx, k)
			if err != nil {
				return errKMS{err}
			}
			if _, err := tx.Exec(ctx, `UPDATE data_encryption_keys SET wrapped = $2, kms_key = $3, wrapped_at = now() WHERE id = $1`,
				k.ID, wrapped, to); err != nil {
				return err
			}
			ids = append(ids, k.ID)
		}
		return nil
	})
	var kmsErr errKMS
	if errors.As(err, &kmsErr) {
		return nil, kmsErr.err
	}
	if err != nil {
		return nil, dataKeysErr("re-wrap the data-encryption keys", err)
	}
	return ids, nil
}
