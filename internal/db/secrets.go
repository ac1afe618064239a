package db

import (
	"context"
	"errors"
	"fmt"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/resolverd/resolverd/internal/errs"
	"github.com/resolverd/resolverd/internal/keyring"
	"github.com/resolverd/resolverd/internal/resolve"
	"github.com/resolverd/resolverd/pkg/secret"
)

// The tables holding sealed secrets, and the place each of their values is bound to
// (docs/CONTRACT.md §7.1).
const (
	centralKeysTable = "ai_provider_keys"
	userKeysTable    = "user_ai_provider_keys"
)

// SecretTables are the tables holding sealed secrets.
var SecretTables = []string{centralKeysTable, userKeysTable}

// centralPlace is where a central key's value lives: ai_provider_keys (id, provider_id).
func centralPlace(id, providerID uuid.UUID) keyring.Place {
	return keyring.Place{Table: centralKeysTable, RowID: id, ProviderID: providerID}
}

// userPlace is where a user's key's value lives: user_ai_provider_keys (id, user_id, ai_provider_id).
func userPlace(id, userID, providerID uuid.UUID) keyring.Place {
	return keyring.Place{Table: userKeysTable, RowID: id, ProviderID: providerID, UserID: userID}
}

// UnreadableSecret is a stored secret that did not open in its place. It names the row, never the
// value.
type UnreadableSecret struct {
	Table string
	RowID uuid.UUID
	// EncryptionKeyID is the row's api_key_key_id.
	EncryptionKeyID string
	// Err says why (an unknown encryption key, or a value that does not authenticate there).
	Err error
}

// OnUnreadableSecret sets what hears of every stored secret that does not open, once per attempt
// (serve logs it at error level and counts it). A key read for resolutions keeps its failure
// (resolve.Key), so that is once per read of the row, not once per resolution refused. Set it
// before serving.
func (s *Store) OnUnreadableSecret(fn func(context.Context, UnreadableSecret)) {
	s.unreadable.Store(&fn)
}

// seal encrypts v for the row at, written in tx, registering the sealing key in encryption_keys in
// the same transaction (the row references it). Admin writes are rare; the extra statement is
// cheaper than any cache that could outlive a rolled-back registration.
func (s *Store) seal(ctx context.Context, tx pgx.Tx, v secret.String, at keyring.Place) (sealed, keyID string, err error) {
	return s.sealAs(ctx, tx, v, at, keyring.FormatBound)
}

// sealAs is seal in the given format (keys rotate --format).
func (s *Store) sealAs(ctx context.Context, tx pgx.Tx, v secret.String, at keyring.Place, format int) (sealed, keyID string, err error) {
	if format == keyring.FormatUnbound {
		sealed, keyID, err = s.sealer.SealUnbound(v)
	} else {
		sealed, keyID, err = s.sealer.Seal(v, at)
	}
	if err != nil {
		return "", "", fmt.Errorf("seal the key: %w", err)
	}
	if _, err := tx.Exec(ctx, `INSERT INTO encryption_keys (id) VALUES ($1) ON CONFLICT DO NOTHING`, keyID); err != nil {
		return "", "", fmt.Errorf("register encryption key %s: %w", keyID, classify(err))
	}
	return sealed, keyID, nil
}

// open decrypts the secret stored at at. A value that does not open there is SECRET_UNREADABLE
// (metadata key_id, and encryption_key_id), reported to OnUnreadableSecret, and never returned.
func (s *Store) open(ctx context.Context, at keyring.Place, sealed string, keyID *string) (secret.String, error) {
	v, err := s.sealer.Open(sealed, keyID, at)
	if err == nil {
		return v, nil
	}
	u := UnreadableSecret{Table: at.Table, RowID: at.RowID, Err: err}
	kv := []string{"key_id", at.RowID.String()}
	if keyID != nil {
		u.EncryptionKeyID = *keyID
		kv = append(kv, "encryption_key_id", *keyID)
	}
	if fn := s.unreadable.Load(); fn != nil {
		(*fn)(ctx, u)
	}
	why := "it was moved or edited outside resolverd"
	if errors.Is(err, keyring.ErrKeyNotConfigured) {
		why = "it is sealed by an encryption key this server was not given"
	}
	return secret.String{}, errs.Wrap(err, errs.SecretUnreadable,
		fmt.Sprintf("the stored API key %s does not open where it is stored (%s); it is not served", at.RowID, why), kv...)
}

// sealedKey is a key row as a resolution carries it: opened (and fingerprinted) only when the
// rules answer with it.
func (s *Store) sealedKey(at keyring.Place, sealed string, keyID *string) *resolve.Key {
	return resolve.SealedKey(at.RowID, func(ctx context.Context) (secret.String, string, error) {
		v, err := s.open(ctx, at, sealed, keyID)
		if err != nil {
			return secret.String{}, "", err
		}
		fp, err := s.fingerprint(ctx, v)
		if err != nil {
			return secret.String{}, "", err
		}
		return v, fp, nil
	})
}
