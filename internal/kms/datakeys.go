package kms

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/resolverd/resolverd/internal/db"
	"github.com/resolverd/resolverd/internal/keyring"
)

// Mode says what Load needs from the data keys.
type Mode int

const (
	// Seal: the command seals with the KMS key (serve, token create, keys rotate's target). The
	// sealing data key must be wrapped by it; an installation with none gets one.
	Seal Mode = iota
	// OpenOnly: the data keys wrapped by the KMS key only open (a --from-kms-key-uri, audit
	// verify); there may be none.
	OpenOnly
)

// SchemaVersion is the migration that creates data_encryption_keys (00014).
const SchemaVersion = 14

// Loaded is what Load unwrapped.
type Loaded struct {
	// Keys are the data keys the KMS key wraps, the sealing one first (Seal), ready for a keyring.
	Keys []keyring.Material
	// Created is the id of the data key this Load made, if it made one.
	Created string
}

// Load unwraps every data key that k wraps. With Seal it first makes sure the installation has a
// sealing data key wrapped by k: when data_encryption_keys has none, it draws one, wraps it and
// stores it under an advisory lock, so replicas starting together agree on a single one; when the
// sealing one is wrapped by another KMS key, it fails naming both. Every KMS call of one Load
// together gets Timeout.
func Load(ctx context.Context, pool *pgxpool.Pool, k *Key, mode Mode) (Loaded, error) {
	ctx, cancel := context.WithTimeout(ctx, Timeout)
	defer cancel()
	var out Loaded
	keys, err := db.DataKeys(ctx, pool)
	if err != nil {
		return out, err
	}
	if mode == Seal && (len(keys) == 0 || !keys[0].Sealing) {
		var made string
		created, err := db.CreateSealingDataKey(ctx, pool, func(ctx context.Context) (db.DataKey, error) {
			m := keyring.NewMaterial()
			wrapped, err := k.wrap(ctx, m)
			if err != nil {
				return db.DataKey{}, err
			}
			made = m.ID()
			return db.DataKey{ID: made, Wrapped: wrapped, KMSKey: k.name}, nil
		})
		if err != nil {
			return out, err
		}
		if created {
			out.Created = made
		}
		if keys, err = db.DataKeys(ctx, pool); err != nil {
			return out, err
		}
	}
	if mode == Seal && keys[0].KMSKey != k.name {
		return out, fmt.Errorf("the sealing data-encryption key %s is wrapped by the KMS key %s, not by %s: give that key's URI, or re-wrap the data keys first with `resolverd keys rotate --kms-key-uri NEW --from-kms-key-uri OLD`",
			keys[0].ID, keys[0].KMSKey, k.name)
	}
	for _, dk := range keys {
		if dk.KMSKey != k.name {
			continue // wrapped by another KMS key: opened only if that key is given too
		}
		m, err := k.unwrap(ctx, dk.ID, dk.Wrapped)
		if err != nil {
			return out, err
		}
		out.Keys = append(out.Keys, m)
	}
	return out, nil
}

// Rewrap re-wraps, in one transaction, every data key that from wraps under to, and returns their
// ids: rotating the KMS key costs one unwrap and one wrap per data key, and no secret is re-sealed.
// Running it again when from wraps nothing any more does nothing.
func Rewrap(ctx context.Context, pool *pgxpool.Pool, from, to *Key) ([]string, error) {
	if from.name == to.name {
		return nil, fmt.Errorf("--from-kms-key-uri names the same KMS key as --kms-key-uri (%s)", to.name)
	}
	ctx, cancel := context.WithTimeout(ctx, Timeout)
	defer cancel()
	return db.RewrapDataKeys(ctx, pool, from.name, to.name, func(ctx context.Context, dk db.DataKey) ([]byte, error) {
		m, err := from.unwrap(ctx, dk.ID, dk.Wrapped)
		if err != nil {
			return nil, err
		}
		return to.wrap(ctx, m)
	})
}
