package db

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/resolverd/resolverd/internal/errs"
	"github.com/resolverd/resolverd/internal/keyring"
	"github.com/resolverd/resolverd/pkg/secret"
)

const providerKeyCols = `id, provider_id, api_key, api_key_key_id, enabled, created_at, updated_at, ` + centralHealthCols

// providerKeyScanner scans a central key row for an admin answer. A value that does not open in its
// place is reported (OnUnreadableSecret) and left empty, so the row is listed with no fingerprint
// and the operator can find it, disable it or delete it; resolutions refuse it (docs/CONTRACT.md §7.1).
func (s *Store) providerKeyScanner(ctx context.Context) func(pgx.Row) (ProviderKey, error) {
	return func(row pgx.Row) (ProviderKey, error) {
		var (
			k      ProviderKey
			sealed string
			keyID  *string
			h      healthScan
		)
		if err := row.Scan(append([]any{&k.ID, &k.ProviderID, &sealed, &keyID, &k.Enabled, &k.CreatedAt, &k.UpdatedAt}, h.dest()...)...); err != nil {
			return k, err
		}
		k.Health = h.record()
		k.Secret, _ = s.open(ctx, centralPlace(k.ID, k.ProviderID), sealed, keyID) // reported by open
		return k, nil
	}
}

// AddProviderKey adds a central key to a live provider (enabled or not).
func (s *Store) AddProviderKey(ctx context.Context, id, providerID uuid.UUID, key secret.String, enabled bool) (ProviderKey, error) {
	var out ProviderKey
	err := s.change(ctx, "AddProviderKey", func(tx pgx.Tx) (changed, error) {
		if err := lockLiveProvider(ctx, tx, providerID, "provider_id", false, forShare); err != nil {
			return changed{}, err
		}
		var err error
		out, err = s.insertProviderKey(ctx, tx, id, providerID, key, enabled)
		if err != nil {
			return changed{}, err
		}
		return s.keyDetails(ctx, out, key, map[string]string{"enabled": fmt.Sprint(enabled)})
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
	err := s.change(ctx, "RotateProviderKey", func(tx pgx.Tx) (changed, error) {
		if err := lockLiveProvider(ctx, tx, providerID, "provider_id", false, forUpdate); err != nil {
			return changed{}, err
		}
		if err := s.sealPlainCentralKeys(ctx, tx, "provider_id = $1 AND enabled", providerID); err != nil {
			return changed{}, err
		}
		// The keys it disables lose their cooldowns and suspensions: rotating is how an admin answers
		// a key the provider refused (docs/CONTRACT.md §17).
		rows, err := tx.Query(ctx, `UPDATE ai_provider_keys SET enabled = false, cooling_until = NULL, suspended_at = NULL,
suspended_reason = NULL, updated_at = now() WHERE provider_id = $1 AND enabled RETURNING id::text`, providerID)
		if err != nil {
			return changed{}, classify(err)
		}
		disabled, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			return changed{}, classify(err)
		}
		out, err = s.insertProviderKey(ctx, tx, id, providerID, key, true)
		if err != nil {
			return changed{}, err
		}
		return s.keyDetails(ctx, out, key, map[string]string{"disabled_keys": fmt.Sprint(len(disabled)),
			"disabled_key_ids": strings.Join(disabled, " ")})
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

// keyDetails is what the audit trail keeps of a central key it added: ids and the fingerprint,
// never the secret.
func (s *Store) keyDetails(ctx context.Context, k ProviderKey, key secret.String, more map[string]string) (changed, error) {
	fp, err := s.fingerprint(ctx, key)
	if err != nil {
		return changed{}, err
	}
	d := map[string]string{"key_id": k.ID.String(), "provider_id": k.ProviderID.String(), "fingerprint": fp}
	for k, v := range more {
		d[k] = v
	}
	return changed{d, created(keyFields(k.ProviderID.String(), fmt.Sprint(k.Enabled), fp))}, nil
}

// keyFields are a central key's fields as its audit records list them: the secret by fingerprint.
func keyFields(providerID, enabled, fingerprint string) []field {
	return []field{{"provider_id", providerID}, {"enabled", enabled}, {"api_key_fingerprint", fingerprint}}
}

// userKeyFields are a user's key's fields as its audit records list them.
func userKeyFields(userID, providerID, fingerprint string) []field {
	return []field{{"user_id", userID}, {"ai_provider_id", providerID}, {"api_key_fingerprint", fingerprint}}
}

// storedFingerprint is the fingerprint of a stored secret for an audit record, and false when it
// does not open here (which must not stop its deletion).
func (s *Store) storedFingerprint(ctx context.Context, at keyring.Place, ciphertext string, keyID *string) (string, bool, error) {
	v, err := s.sealer.Open(ciphertext, keyID, at)
	if err != nil {
		return "", false, nil
	}
	fp, err := s.fingerprint(ctx, v)
	return fp, err == nil, err
}

// SetProviderKeyEnabled enables or disables a central key. Enabling one also ends its suspension
// and its cooldown (docs/CONTRACT.md §17): an admin enabling a key says it is good again.
func (s *Store) SetProviderKeyEnabled(ctx context.Context, id uuid.UUID, enabled bool) (ProviderKey, error) {
	var out ProviderKey
	err := s.change(ctx, "SetProviderKeyEnabled", func(tx pgx.Tx) (changed, error) {
		var (
			was      bool
			h        healthScan
			provider uuid.UUID
			stored   string
			encKey   *string // api_key_key_id: NULL for a legacy plain row
		)
		err := tx.QueryRow(ctx, `SELECT enabled, provider_id, api_key, api_key_key_id, `+centralHealthCols+` FROM ai_provider_keys WHERE id = $1 FOR UPDATE`, id).
			Scan(append([]any{&was, &provider, &stored, &encKey}, h.dest()...)...)
		if notFound(err) {
			return changed{}, errNotFound("provider key", id)
		}
		if err != nil {
			return changed{}, classify(err)
		}
		if encKey == nil { // migration 10's CHECK refuses an update that leaves it plain
			if err := s.sealPlain(ctx, tx, centralPlace(id, provider), stored); err != nil {
				return changed{}, err
			}
		}
		out, err = s.providerKeyScanner(ctx)(tx.QueryRow(ctx, `UPDATE ai_provider_keys SET enabled = $2, updated_at = now(),
cooling_until = CASE WHEN $2 THEN NULL ELSE cooling_until END,
suspended_at = CASE WHEN $2 THEN NULL ELSE suspended_at END,
suspended_reason = CASE WHEN $2 THEN NULL ELSE suspended_reason END
WHERE id = $1 RETURNING `+providerKeyCols, id, enabled))
		if err != nil {
			return changed{}, classify(err)
		}
		before := append([]field{{"enabled", fmt.Sprint(was)}}, healthFields(h.record())...)
		after := append([]field{{"enabled", fmt.Sprint(enabled)}}, healthFields(out.Health)...)
		return changed{map[string]string{"key_id": id.String(), "provider_id": out.ProviderID.String(), "enabled": fmt.Sprint(enabled)},
			diff(before, after)}, nil
	})
	if err != nil {
		return ProviderKey{}, fmt.Errorf("set provider key %s enabled=%t: %w", id, enabled, err)
	}
	return out, nil
}

// DeleteProviderKey deletes a central key.
func (s *Store) DeleteProviderKey(ctx context.Context, id uuid.UUID) error {
	return s.deleteRow(ctx, "DeleteProviderKey", "ai_provider_keys", "provider key", "provider_id", id)
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

const userKeyCols = `id, user_id, ai_provider_id, api_key, api_key_key_id, created_at, updated_at, ` + userHealthCols

// userKeyScanner scans a user's key row for an admin answer; like providerKeyScanner, a value that
// does not open is reported and left empty.
func (s *Store) userKeyScanner(ctx context.Context) func(pgx.Row) (UserProviderKey, error) {
	return func(row pgx.Row) (UserProviderKey, error) {
		var (
			k      UserProviderKey
			sealed string
			keyID  *string
			h      healthScan
		)
		if err := row.Scan(append([]any{&k.ID, &k.UserID, &k.ProviderID, &sealed, &keyID, &k.CreatedAt, &k.UpdatedAt}, h.dest()...)...); err != nil {
			return k, err
		}
		k.Health = h.record()
		k.Secret, _ = s.open(ctx, userPlace(k.ID, k.UserID, k.ProviderID), sealed, keyID) // reported by open
		return k, nil
	}
}

// ListUserProviderKeys returns a page of one user's own keys, by provider id (then id).
func (s *Store) ListUserProviderKeys(ctx context.Context, userID uuid.UUID, p Page[UserProviderKeyPos]) ([]UserProviderKey, error) {
	var provider, id *uuid.UUID
	if a := p.After; a != nil {
		provider, id = &a.ProviderID, &a.ID
	}
	return list(ctx, s, "user provider keys", `SELECT `+userKeyCols+` FROM user_ai_provider_keys
WHERE user_id = $1 AND ($2::uuid IS NULL OR (ai_provider_id, id) > ($2::uuid, $3::uuid))
ORDER BY ai_provider_id, id LIMIT $4`, s.userKeyScanner(ctx), userID, provider, id, p.limit())
}

// PutUserProviderKey sets a user's own key for a provider, replacing the one they had (a new key is
// no longer marked invalid). The provider must be live and enabled, the user must exist and not be
// deleted.
func (s *Store) PutUserProviderKey(ctx context.Context, id, userID, providerID uuid.UUID, key secret.String) (UserProviderKey, error) {
	var out UserProviderKey
	err := s.change(ctx, "PutUserProviderKey", func(tx pgx.Tx) (changed, error) {
		if err := lockLiveProvider(ctx, tx, providerID, "ai_provider_id", true, forShare); err != nil {
			return changed{}, err
		}
		if err := lockLiveUser(ctx, tx, userID, "user_id"); err != nil {
			return changed{}, err
		}
		// The key it replaces, for the audit record: writers of one user's key for one provider
		// queue here, so the key read is the key replaced.
		var before []field
		var oldID uuid.UUID
		var oldText string
		var oldKeyID *string
		var oldSuspended *time.Time
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtext('resolverd.user_ai_provider_keys'), hashtext($1::text || $2::text))`,
			userID, providerID); err != nil {
			return changed{}, classify(err)
		}
		err := tx.QueryRow(ctx, `SELECT id, api_key, api_key_key_id, suspended_at FROM user_ai_provider_keys WHERE user_id = $1 AND ai_provider_id = $2 FOR UPDATE`,
			userID, providerID).Scan(&oldID, &oldText, &oldKeyID, &oldSuspended)
		switch {
		case err == nil:
			fp, ok, err := s.storedFingerprint(ctx, userPlace(oldID, userID, providerID), oldText, oldKeyID)
			if err != nil {
				return changed{}, err
			}
			if !ok {
				fp = ""
			}
			before = userKeyFields(userID.String(), providerID.String(), fp)
		case !notFound(err):
			return changed{}, classify(err)
		}
		// The value is bound to the row that finally holds it: the user's row for the provider if
		// there is one (read and locked above, so no other Put replaces it meanwhile), else the new one.
		rowID := id
		if before != nil {
			rowID = oldID
		}
		sealed, keyID, err := s.seal(ctx, tx, key, userPlace(rowID, userID, providerID))
		if err != nil {
			return changed{}, err
		}
		var lastOutcome *string
		var lastAt *time.Time
		err = tx.QueryRow(ctx, `INSERT INTO user_ai_provider_keys (id, user_id, ai_provider_id, api_key, api_key_key_id)
VALUES ($1, $2, $3, $4, $5)
ON CONFLICT (user_id, ai_provider_id) DO UPDATE SET api_key = EXCLUDED.api_key, api_key_key_id = EXCLUDED.api_key_key_id, updated_at = now(),
  suspended_at = NULL, suspended_reason = NULL
RETURNING id, user_id, ai_provider_id, created_at, updated_at, last_report_outcome, last_report_at`, id, userID, providerID, sealed, keyID).
			Scan(&out.ID, &out.UserID, &out.ProviderID, &out.CreatedAt, &out.UpdatedAt, &lastOutcome, &lastAt)
		if err != nil {
			return changed{}, classify(err)
		}
		if out.ID != rowID {
			// Another Put inserted the user's first key for the provider between the lookup and the
			// insert, and this one replaced it: seal again for that row.
			if sealed, keyID, err = s.seal(ctx, tx, key, userPlace(out.ID, userID, providerID)); err != nil {
				return changed{}, err
			}
			if _, err := tx.Exec(ctx, `UPDATE user_ai_provider_keys SET api_key = $2, api_key_key_id = $3 WHERE id = $1`,
				out.ID, sealed, keyID); err != nil {
				return changed{}, classify(err)
			}
		}
		out.Secret = key // just sealed for the row: no need to open it again
		out.Health = (&healthScan{last: lastOutcome, lastAt: lastAt}).record()
		fp, err := s.fingerprint(ctx, key)
		if err != nil {
			return changed{}, err
		}
		d := map[string]string{"key_id": out.ID.String(), "provider_id": providerID.String(), "user_id": userID.String(), "fingerprint": fp}
		after := userKeyFields(userID.String(), providerID.String(), fp)
		if before == nil {
			return changed{d, created(after)}, nil
		}
		if oldSuspended != nil { // the new key is no longer marked invalid
			before = append(before, field{"suspended_at", timeText(*oldSuspended)})
			after = append(after, field{"suspended_at", ""})
		}
		return changed{d, diff(before, after)}, nil
	})
	if err != nil {
		return UserProviderKey{}, fmt.Errorf("put the key of user %s for provider %s: %w", userID, providerID, err)
	}
	return out, nil
}

// DeleteUserProviderKey deletes a user's own key.
func (s *Store) DeleteUserProviderKey(ctx context.Context, id uuid.UUID) error {
	return s.deleteRow(ctx, "DeleteUserProviderKey", "user_ai_provider_keys", "user provider key", "user_id", id)
}

// deleteRow hard-deletes key id of table (ai_provider_keys, whose owner column is provider_id, or
// user_ai_provider_keys, user_id) as the change action; a missing row is NOT_FOUND. Its record
// keeps the row's fields as they were, the secret by fingerprint.
func (s *Store) deleteRow(ctx context.Context, action, table, what, owner string, id uuid.UUID) error {
	err := s.change(ctx, action, func(tx pgx.Tx) (changed, error) {
		var (
			ownerID, providerID uuid.UUID
			enabled             bool
			ciphertext          string
			keyID               *string
		)
		var err error
		if owner == "provider_id" {
			err = tx.QueryRow(ctx, `DELETE FROM ai_provider_keys WHERE id = $1 RETURNING provider_id, enabled, api_key, api_key_key_id`, id).
				Scan(&providerID, &enabled, &ciphertext, &keyID)
		} else {
			err = tx.QueryRow(ctx, `DELETE FROM user_ai_provider_keys WHERE id = $1 RETURNING user_id, ai_provider_id, api_key, api_key_key_id`, id).
				Scan(&ownerID, &providerID, &ciphertext, &keyID)
		}
		if notFound(err) {
			return changed{}, errNotFound(what, id)
		}
		if err != nil {
			return changed{}, classify(err)
		}
		d := map[string]string{"key_id": id.String(), "provider_id": providerID.String()}
		at := centralPlace(id, providerID)
		if owner != "provider_id" {
			at = userPlace(id, ownerID, providerID)
		}
		fp, ok, err := s.storedFingerprint(ctx, at, ciphertext, keyID)
		if err != nil {
			return changed{}, err
		}
		if ok {
			d["fingerprint"] = fp
		} else {
			d["fingerprint_unavailable"] = "the deleted key did not open with the configured encryption keys"
		}
		fields := keyFields(providerID.String(), fmt.Sprint(enabled), fp)
		if owner != "provider_id" {
			d["user_id"] = ownerID.String()
			fields = userKeyFields(ownerID.String(), providerID.String(), fp)
		}
		if !ok {
			fields = fields[:len(fields)-1]
		}
		return changed{d, deleted(fields)}, nil
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
		if err := s.sealPlain(ctx, tx, centralPlace(r.id, r.provider), r.plain); err != nil {
			return err
		}
	}
	return nil
}

// sealPlain seals the legacy plain value of the row at (NULL api_key_key_id), read and locked in tx,
// and writes it back in place.
func (s *Store) sealPlain(ctx context.Context, tx pgx.Tx, at keyring.Place, plain string) error {
	sealed, keyID, err := s.seal(ctx, tx, secret.New(plain), at)
	if err != nil {
		return err
	}
	_, err = tx.Exec(ctx, `UPDATE `+pgx.Identifier{at.Table}.Sanitize()+` SET api_key = $2, api_key_key_id = $3 WHERE id = $1`, at.RowID, sealed, keyID)
	return classify(err)
}
