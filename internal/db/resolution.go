package db

import (
	"context"
	"fmt"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/resolverd/resolverd/internal/errs"
	"github.com/resolverd/resolverd/internal/resolve"
)

// configColumns and providerColumns are read together: a config always comes with its provider.
const (
	configColumns   = `m.id, m.ai_provider_id, m.model, m.display_name, m.enabled, m.is_default, m.deleted, m.context_limit, m.compression_threshold, m.options, m.created_at, m.updated_at`
	providerColumns = `p.id, p.type, p.name, p.display_name, p.base_url, p.enabled, p.deleted, p.byok_policy, p.created_at, p.updated_at`
)

// The chat and every config a resolution may need (the requested one, the chat's own, the live
// default), each joined with its provider, in one batch: one round trip.
const (
	snapshotChatSQL    = `SELECT id, owner_id, last_model_config_id FROM chats WHERE id = $1`
	snapshotConfigsSQL = `SELECT ` + configColumns + `, ` + providerColumns + `
FROM chat_model_configs m LEFT JOIN ai_providers p ON p.id = m.ai_provider_id
WHERE m.id = $1
   OR m.id = (SELECT last_model_config_id FROM chats WHERE id = $2)
   OR (m.is_default AND NOT m.deleted)`
)

// ResolutionSnapshot reads what resolve.Resolve decides on. requestedConfigID may be uuid.Nil.
func (s *Store) ResolutionSnapshot(ctx context.Context, chatID, requestedConfigID uuid.UUID) (*resolve.Snapshot, error) {
	batch := &pgx.Batch{}
	batch.Queue(snapshotChatSQL, chatID)
	batch.Queue(snapshotConfigsSQL, nullUUID(requestedConfigID), chatID)
	br := s.pool.SendBatch(ctx, batch)
	defer br.Close()

	snap := &resolve.Snapshot{Configs: map[uuid.UUID]*resolve.ModelConfig{}}
	var chatModel *uuid.UUID
	err := br.QueryRow().Scan(&snap.Chat.ID, &snap.Chat.OwnerID, &chatModel)
	if notFound(err) {
		return nil, errs.New(errs.ChatNotFound, fmt.Sprintf("chat %s does not exist", chatID), "chat_id", chatID.String())
	}
	if err != nil {
		return nil, fmt.Errorf("read chat %s: %w", chatID, classify(err))
	}
	if chatModel != nil {
		snap.Chat.ModelConfigID = *chatModel
	}
	rows, err := br.Query()
	if err != nil {
		return nil, fmt.Errorf("read the model configs of chat %s: %w", chatID, classify(err))
	}
	for rows.Next() {
		c, err := scanConfigWithProvider(rows)
		if err != nil {
			rows.Close()
			return nil, fmt.Errorf("read the model configs of chat %s: %w", chatID, classify(err))
		}
		snap.Configs[c.ID] = &c.ModelConfig
		if c.IsDefault && !c.Deleted {
			snap.DefaultID = c.ID
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read the model configs of chat %s: %w", chatID, classify(err))
	}
	if err := br.Close(); err != nil {
		return nil, fmt.Errorf("read chat %s: %w", chatID, classify(err))
	}
	return snap, nil
}

// UserKey returns the user's own key for the provider, or nil when the user has none.
func (s *Store) UserKey(ctx context.Context, userID, providerID uuid.UUID) (*resolve.Key, error) {
	var (
		id         uuid.UUID
		ciphertext string
		keyID      *string
	)
	err := s.pool.QueryRow(ctx, `SELECT id, api_key, api_key_key_id FROM user_ai_provider_keys
WHERE user_id = $1 AND ai_provider_id = $2`, userID, providerID).Scan(&id, &ciphertext, &keyID)
	if notFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read the key of user %s for provider %s: %w", userID, providerID, classify(err))
	}
	v, err := s.open("user_ai_provider_keys", id, ciphertext, keyID)
	if err != nil {
		return nil, err
	}
	return &resolve.Key{ID: id, Secret: v}, nil
}

// OldestEnabledCentralKey returns the provider's oldest enabled central key (by created_at, then
// id), or nil when it has none.
func (s *Store) OldestEnabledCentralKey(ctx context.Context, providerID uuid.UUID) (*resolve.Key, error) {
	var (
		id         uuid.UUID
		ciphertext string
		keyID      *string
	)
	err := s.pool.QueryRow(ctx, `SELECT id, api_key, api_key_key_id FROM ai_provider_keys
WHERE provider_id = $1 AND enabled ORDER BY created_at, id LIMIT 1`, providerID).Scan(&id, &ciphertext, &keyID)
	if notFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read the central key of provider %s: %w", providerID, classify(err))
	}
	v, err := s.open("ai_provider_keys", id, ciphertext, keyID)
	if err != nil {
		return nil, err
	}
	return &resolve.Key{ID: id, Secret: v}, nil
}

func nullUUID(id uuid.UUID) *uuid.UUID {
	if id == uuid.Nil {
		return nil
	}
	return &id
}
