package db

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/resolverd/resolverd/internal/errs"
	"github.com/resolverd/resolverd/pkg/secret"
)

const providerKeyCols = `id, provider_id, api_key, api_key_key_id, enabled, created_at, updated_at`

// providerKeyScanner scans a central key row for an admin answer. A value that does not open in its
// place is reported (OnUnreadableSecret) and left empty, so the row is listed with no fingerprint
// and the operator can find it, disable it or delete it; resolutions refuse it (docs/CONTRACT.md §7.1).
func (s *Store) providerKeyScanner(ctx context.Context) func(pgx.Row) (ProviderKey, error) {
	return func(row pgx.Row) (ProviderKey, error) {
		var (
			k      ProviderKey
			sealed string
			keyID  *string
		)
		if err := row.Scan(&k.ID, &k.ProviderID, &sealed, &keyID, &k.Enabled, &k.CreatedAt, &k.UpdatedAt); err != nil {
			return k, err
		}
		k.Secret, _ = s.open(ctx, centralPlace(k.ID, k.ProviderID), sealed, keyID) // reported by open
		return k, nil
	}
}

// AddProviderKey adds a central key to a live provider (enabled or not).
func (s *Store) AddProviderKey(ctx context.Context, id, providerID uuid.UUID, key secret.String, enabled bool) (ProviderKey, error) {
	var out ProviderKey
	err := s.change(ctx, "AddProviderKey", func(tx pgx.Tx) (map[string]string, error) {
		if err := lockLiveProvider(ctx, tx, providerID, "provider_id", false, forShare); err != nil {
			return nil, err
		}
		var err error
		out, err = s.insertProviderKey(ctx, tx, id, providerID, key, enabled)
		if err != nil {
			return nil, err
		}
		return s.keyDetails(ctx, out.ID, providerID, key, map[string]string{"enabled": fmt.Sprint(enabled)})
	})
	if err != nil {
		return ProviderKey{}, fmt.Errorf("add a key to provider %s: %w", providerID, err)
	}
	return out, nil
}

// RotateProviderKey adds an enabled central key and disables every other key of the provider, in
// one transaction: no resolution sees both or neither. Rotations of one provider queue on its row.
func (s *Store) RotateProviderKey(ctx context.Context, id, providerID uuid.UUID, key secret.String) (ProviderKey, error) {
	var out ProviderKey
	err := s.change(ctx, "RotateProviderKey", func(tx pgx.Tx) (map[string]string, error) {
		if err := lockLiveProvider(ctx, tx, providerID, "provider_id", false, forUpdate); err != nil {
			return nil, err
		}
		if err := s.sealPlainCentralKeys(ctx, tx, "provider_id = $1 AND enabled", providerID); err != nil {
			return nil, err
		}
		tag, err := tx.Exec(ctx, `UPDATE ai_provider_keys SET enabled = false, updated_at = now()
WHERE provider_id = $1 AND enabled`, providerID)
		if err != nil {
			return nil, classify(err)
		}
		out, err = s.insertProviderKey(ctx, tx, id, providerID, key, true)
		if err != nil {
			return nil, err
		}
		return s.keyDetails(ctx, out.ID, providerID, key, map[string]string{"disabled_keys": fmt.Sprint(tag.RowsAffected())})
	})
	if err != nil {
		return ProviderKey{}, fmt.Errorf("rotate the key of provider %s: %w", providerID, err)
	}
	return out, nil
}

func (s *Store) insertProviderKey(ctx context.Context, tx pgx.Tx, id, providerID uuid.UUID, key secret.String, enabled bool) (ProviderKey, error) {
	// The id is chosen up front, so the value is sealed for its row before it is written.
	sealed, keyID, err := s.seal(ctx, tx, key, centralPlace(id, providerID))
	if err != nil {
		return ProviderKey{}, err
	}
	// clock_timestamp, not now(): keys added in one transaction still get an order.
	out, err := s.providerKeyScanner(ctx)(tx.QueryRow(ctx, `INSERT INTO ai_provider_keys (id, provider_id, api_key, api_key_key_id, enabled, created_at, updated_at)
VALUES ($1, $2, $3, $4, $5, clock_timestamp(), clock_timestamp()) RETURNING `+providerKeyCols, id, providerID, sealed, keyID, enabled))
	return out, classify(err)
}

// keyDetails is what the audit trail keeps of a change that set a secret: ids and the fingerprint.
func (s *Store) keyDetails(ctx context.Context, keyID, providerID uuid.UUID, key secret.String, more map[string]string) (map[string]string, error) {
	fp, err := s.fingerprint(ctx, key)
	if err != nil {
		return nil, err
	}
	d := map[string]string{"key_id": keyID.String(), "provider_id": providerID.String(), "fingerprint": fp}
	for k, v := range more {
		d[k] = v
	}
	return d, nil
}

// SetProviderKeyEnabled enables or disables a central key.
func (s *Store) SetProviderKeyEnabled(ctx context.Context, id uuid.UUID, enabled bool) (ProviderKey, error) {
	var out ProviderKey
	err := s.change(ctx, "SetProviderKeyEnabled", func(tx pgx.Tx) (map[string]string, error) {
		if err := s.sealPlainCentralKeys(ctx, tx, "id = $1", id); err != nil {
			return nil, err
		}
		var err error
		out, err = s.providerKeyScanner(ctx)(tx.QueryRow(ctx, `UPDATE ai_provider_keys SET enabled = $2, updated_at = now()
WHERE id = $1 RETURNING `+providerKeyCols, id, enabled))
		if notFound(err) {
			return nil, errNotFound("provider key", id)
		}
		if err != nil {
			return nil, classify(err)
		}
		return map[string]string{"key_id": id.String(), "provider_id": out.ProviderID.String(), "enabled": fmt.Sprint(enabled)}, nil
	})
	if err != nil {
		return ProviderKey{}, fmt.Errorf("set provider key %s enabled=%t: %w", id, enabled, err)
	}
	return out, nil
}

// DeleteProviderKey deletes a central key.
func (s *Store) DeleteProviderKey(ctx context.Context, id uuid.UUID) error {
	return s.deleteRow(ctx, "DeleteProviderKey", "ai_provider_keys", "provider key", "key_id", id)
}

// ListProviderKeys returns a page of the central keys of one provider, or of all when providerID
// is uuid.Nil: by provider id, then oldest first (then id).
func (s *Store) ListProviderKeys(ctx context.Context, providerID uuid.UUID, p Page[ProviderKeyPos]) ([]ProviderKey, error) {
	var (
		provider, id *uuid.UUID
		created      *time.Time
	)
	if a := p.After; a != nil {
		provider, created, id = &a.ProviderID, &a.CreatedAt, &a.ID
	}
	return list(ctx, s, "provider keys", `SELECT `+providerKeyCols+` FROM ai_provider_keys
WHERE ($1::uuid IS NULL OR provider_id = $1)
  AND ($2::uuid IS NULL OR (provider_id, created_at, id) > ($2::uuid, $3::timestamptz, $4::uuid))
ORDER BY provider_id, created_at, id LIMIT $5`, s.providerKeyScanner(ctx), nullUUID(providerID), provider, created, id, p.limit())
}

// PutUserProviderKey sets a user's own key for a provider, replacing the one they had. The provider
// must be live and enabled, the user must exist and not be deleted.
func (s *Store) PutUserProviderKey(ctx context.Context, id, userID, providerID uuid.UUID, key secret.String) (UserProviderKey, error) {
	var out UserProviderKey
	err := s.change(ctx, "PutUserProviderKey", func(tx pgx.Tx) (map[string]string, error) {
		if err := lockLiveProvider(ctx, tx, providerID, "ai_provider_id", true, forShare); err != nil {
			return nil, err
		}
		if err := lockLiveUser(ctx, tx, userID, "user_id"); err != nil {
			return nil, err
		}
		// The value is bound to the row that finally holds it: the user's row for the provider if
		// there is one (locked until commit, so no other Put replaces it meanwhile), else the new one.
		rowID := id
		err := tx.QueryRow(ctx, `SELECT id FROM user_ai_provider_keys WHERE user_id = $1 AND ai_provider_id = $2 FOR UPDATE`,
			userID, providerID).Scan(&rowID)
		if err != nil && !notFound(err) {
			return nil, classify(err)
		}
		sealed, keyID, err := s.seal(ctx, tx, key, userPlace(rowID, userID, providerID))
		if err != nil {
			return nil, err
		}
		var stored string
		var storedKeyID *string
		err = tx.QueryRow(ctx, `INSERT INTO user_ai_provider_keys (id, user_id, ai_provider_id, api_key, api_key_key_id)
VALUES ($1, $2, $3, $4, $5)
ON CONFLICT (user_id, ai_provider_id) DO UPDATE SET api_key = EXCLUDED.api_key, api_key_key_id = EXCLUDED.api_key_key_id, updated_at = now()
RETURNING id, user_id, ai_provider_id, api_key, api_key_key_id, created_at, updated_at`, id, userID, providerID, sealed, keyID).
			Scan(&out.ID, &out.UserID, &out.ProviderID, &stored, &storedKeyID, &out.CreatedAt, &out.UpdatedAt)
		if err != nil {
			return nil, classify(err)
		}
		if out.ID != rowID {
			// Another Put inserted the user's first key for the provider between the lookup and the
			// insert, and this one replaced it: seal again for that row.
			if sealed, keyID, err = s.seal(ctx, tx, key, userPlace(out.ID, userID, providerID)); err != nil {
				return nil, err
			}
			if err := tx.QueryRow(ctx, `UPDATE user_ai_provider_keys SET api_key = $2, api_key_key_id = $3 WHERE id = $1
RETURNING api_key, api_key_key_id`, out.ID, sealed, keyID).Scan(&stored, &storedKeyID); err != nil {
				return nil, classify(err)
			}
		}
		if out.Secret, err = s.open(ctx, userPlace(out.ID, out.UserID, out.ProviderID), stored, storedKeyID); err != nil {
			return nil, err
		}
		return s.keyDetails(ctx, out.ID, providerID, key, map[string]string{"user_id": userID.String()})
	})
	if err != nil {
		return UserProviderKey{}, fmt.Errorf("put the key of user %s for provider %s: %w", userID, providerID, err)
	}
	return out, nil
}

// DeleteUserProviderKey deletes a user's own key.
func (s *Store) DeleteUserProviderKey(ctx context.Context, id uuid.UUID) error {
	return s.deleteRow(ctx, "DeleteUserProviderKey", "user_ai_provider_keys", "user provider key", "key_id", id)
}

// deleteRow hard-deletes row id of table as the change action; a missing row is NOT_FOUND.
func (s *Store) deleteRow(ctx context.Context, action, table, what, idField string, id uuid.UUID) error {
	err := s.change(ctx, action, func(tx pgx.Tx) (map[string]string, error) {
		tag, err := tx.Exec(ctx, `DELETE FROM `+pgx.Identifier{table}.Sanitize()+` WHERE id = $1`, id)
		if err != nil {
			return nil, classify(err)
		}
		if tag.RowsAffected() == 0 {
			return nil, errNotFound(what, id)
		}
		return map[string]string{idField: id.String()}, nil
	})
	if err != nil {
		return fmt.Errorf("delete %s %s: %w", what, id, err)
	}
	return nil
}

// lockLiveUser share-locks user id for the rest of tx; a missing or deleted user is USER_NOT_FOUND.
func lockLiveUser(ctx context.Context, tx pgx.Tx, id uuid.UUID, field string) error {
	var deleted bool
	err := tx.QueryRow(ctx, `SELECT deleted FROM users WHERE id = $1 FOR SHARE`, id).Scan(&deleted)
	if notFound(err) || (err == nil && deleted) {
		return errs.New(errs.UserNotFound, fmt.Sprintf("user %s does not exist", id), field, id.String())
	}
	return classify(err)
}

// sealPlainCentralKeys seals the legacy plain central keys (NULL api_key_key_id) matching where,
// which a write is about to update: migration 10's CHECK refuses to leave a row it updates plain,
// even before `resolverd keys rotate` has validated it for the table.
func (s *Store) sealPlainCentralKeys(ctx context.Context, tx pgx.Tx, where string, args ...any) error {
	rows, err := tx.Query(ctx, `SELECT id, provider_id, api_key FROM ai_provider_keys
WHERE api_key_key_id IS NULL AND `+where+` FOR UPDATE`, args...)
	if err != nil {
		return classify(err)
	}
	type plainRow struct {
		id, provider uuid.UUID
		plain        string
	}
	var plain []plainRow
	for rows.Next() {
		var r plainRow
		if err := rows.Scan(&r.id, &r.provider, &r.plain); err != nil {
			rows.Close()
			return classify(err)
		}
		plain = append(plain, r)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return classify(err)
	}
	for _, r := range plain {
		sealed, keyID, err := s.seal(ctx, tx, secret.New(r.plain), centralPlace(r.id, r.provider))
		if err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `UPDATE ai_provider_keys SET api_key = $2, api_key_key_id = $3 WHERE id = $1`, r.id, sealed, keyID); err != nil {
			return classify(err)
		}
	}
	return nil
}
