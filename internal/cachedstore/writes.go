package cachedstore

import (
	"context"
	"encoding/hex"
	"time"

	"github.com/google/uuid"

	"github.com/resolverd/resolverd/internal/db"
	"github.com/resolverd/resolverd/internal/resolve"
	"github.com/resolverd/resolverd/pkg/secret"
)

// Writes go to the database and then drop what they changed from this replica's memory at once,
// so a caller reads its own write here without waiting for the notification (which still comes,
// and is what other replicas act on). Names match migration 7's payloads.

func (s *Store) CreateProvider(ctx context.Context, p resolve.Provider) (db.Provider, error) {
	out, err := s.Store.CreateProvider(ctx, p)
	if err == nil {
		s.invalidate(db.Change{Table: "ai_providers", ID: out.ID.String()})
	}
	return out, err
}

func (s *Store) UpdateProvider(ctx context.Context, id uuid.UUID, mutate func(*db.Provider) error) (db.Provider, error) {
	out, err := s.Store.UpdateProvider(ctx, id, mutate)
	if err == nil {
		s.invalidate(db.Change{Table: "ai_providers", ID: id.String()})
	}
	return out, err
}

func (s *Store) DeleteProvider(ctx context.Context, id uuid.UUID) error {
	err := s.Store.DeleteProvider(ctx, id)
	if err == nil {
		s.invalidate(db.Change{Table: "ai_providers", ID: id.String()})
	}
	return err
}

func (s *Store) AddProviderKey(ctx context.Context, id, providerID uuid.UUID, key secret.String, enabled bool) (db.ProviderKey, error) {
	out, err := s.Store.AddProviderKey(ctx, id, providerID, key, enabled)
	if err == nil {
		s.invalidate(db.Change{Table: "ai_provider_keys", ProviderID: providerID.String()})
	}
	return out, err
}

func (s *Store) RotateProviderKey(ctx context.Context, id, providerID uuid.UUID, key secret.String) (db.ProviderKey, error) {
	out, err := s.Store.RotateProviderKey(ctx, id, providerID, key)
	if err == nil {
		s.invalidate(db.Change{Table: "ai_provider_keys", ProviderID: providerID.String()})
	}
	return out, err
}

func (s *Store) SetProviderKeyEnabled(ctx context.Context, id uuid.UUID, enabled bool) (db.ProviderKey, error) {
	out, err := s.Store.SetProviderKeyEnabled(ctx, id, enabled)
	if err == nil {
		s.invalidate(db.Change{Table: "ai_provider_keys", ProviderID: out.ProviderID.String()})
	}
	return out, err
}

// ReportCredentialOutcome drops the reported key's entry at once when the report wrote its row:
// this replica stops serving a key reported out before the notification comes (which other
// replicas act on).
func (s *Store) ReportCredentialOutcome(ctx context.Context, keyID uuid.UUID, outcome resolve.Outcome, retryAfter time.Duration) (db.KeyReport, error) {
	out, err := s.Store.ReportCredentialOutcome(ctx, keyID, outcome, retryAfter)
	if err == nil && out.Written {
		if out.Source == resolve.SourceUser {
			s.invalidate(db.Change{Table: "user_ai_provider_keys", ID: keyID.String(), UserID: out.UserID.String(), ProviderID: out.ProviderID.String()})
		} else {
			s.invalidate(db.Change{Table: "ai_provider_keys", ID: keyID.String(), ProviderID: out.ProviderID.String()})
		}
	}
	return out, err
}

func (s *Store) DeleteProviderKey(ctx context.Context, id uuid.UUID) error {
	err := s.Store.DeleteProviderKey(ctx, id)
	if err == nil {
		s.invalidate(db.Change{Table: "ai_provider_keys"}) // provider unknown here: drop all central keys
	}
	return err
}

func (s *Store) CreateModelConfig(ctx context.Context, c resolve.ModelConfig) (db.ModelConfig, error) {
	out, err := s.Store.CreateModelConfig(ctx, c)
	if err == nil {
		s.invalidate(db.Change{Table: "chat_model_configs", ID: out.ID.String()})
	}
	return out, err
}

func (s *Store) UpdateModelConfig(ctx context.Context, id uuid.UUID, mutate func(*db.ModelConfig) error) (db.ModelConfig, error) {
	out, err := s.Store.UpdateModelConfig(ctx, id, mutate)
	if err == nil {
		// Making this config the default took the flag from another: the default entry goes too.
		s.invalidate(db.Change{Table: "chat_model_configs", ID: id.String()})
	}
	return out, err
}

func (s *Store) DeleteModelConfig(ctx context.Context, id uuid.UUID) error {
	err := s.Store.DeleteModelConfig(ctx, id)
	if err == nil {
		s.invalidate(db.Change{Table: "chat_model_configs", ID: id.String()})
	}
	return err
}

func (s *Store) DeleteUser(ctx context.Context, id uuid.UUID) error {
	err := s.Store.DeleteUser(ctx, id)
	if err == nil {
		s.invalidate(db.Change{Table: "user_ai_provider_keys", UserID: id.String()}) // all of the user's keys went
	}
	return err
}

func (s *Store) PutUserProviderKey(ctx context.Context, id, userID, providerID uuid.UUID, key secret.String) (db.UserProviderKey, error) {
	out, err := s.Store.PutUserProviderKey(ctx, id, userID, providerID, key)
	if err == nil {
		s.invalidate(db.Change{Table: "user_ai_provider_keys", UserID: userID.String(), ProviderID: providerID.String()})
	}
	return out, err
}

func (s *Store) DeleteUserProviderKey(ctx context.Context, id uuid.UUID) error {
	err := s.Store.DeleteUserProviderKey(ctx, id)
	if err == nil {
		s.invalidate(db.Change{Table: "user_ai_provider_keys"})
	}
	return err
}

func (s *Store) PutChat(ctx context.Context, id, ownerID, modelConfigID uuid.UUID) (db.Chat, error) {
	out, err := s.Store.PutChat(ctx, id, ownerID, modelConfigID)
	if err == nil {
		s.invalidate(db.Change{Table: "chats", ID: id.String()})
	}
	return out, err
}

// CreateToken drops "unknown" for the new token's hash at once: a caller that tried it before it
// existed is let in by the next call here (other replicas act on the notification).
func (s *Store) CreateToken(ctx context.Context, id uuid.UUID, name string, scopes []string, hash []byte, expiresAt *time.Time) (db.Token, error) {
	out, err := s.Store.CreateToken(ctx, id, name, scopes, hash, expiresAt)
	if err == nil {
		s.invalidate(db.Change{Table: "api_tokens", ID: id.String(), TokenHash: hex.EncodeToString(hash)})
	}
	return out, err
}

// RevokeToken drops the revoked token alone, found by id (its hash is not known here; the
// notification names it for the other replicas).
func (s *Store) RevokeToken(ctx context.Context, id uuid.UUID, allowed func(scopes []string) error) error {
	err := s.Store.RevokeToken(ctx, id, allowed)
	if err == nil {
		s.invalidate(db.Change{Table: "api_tokens", ID: id.String()})
	}
	return err
}
