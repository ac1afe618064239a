package db

import (
	"context"
	"fmt"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/resolverd/resolverd/internal/errs"
)

// PutUser creates user id or sets its username; putting a deleted user brings it back (without the
// keys its deletion removed).
func (s *Store) PutUser(ctx context.Context, id uuid.UUID, username string) (User, error) {
	var u User
	err := s.change(ctx, "PutUser", func(tx pgx.Tx) (map[string]string, error) {
		var err error
		u, err = scanUser(tx.QueryRow(ctx, `INSERT INTO users (id, username) VALUES ($1, $2)
ON CONFLICT (id) DO UPDATE SET username = EXCLUDED.username, deleted = false, updated_at = now()
RETURNING `+userCols, id, username))
		if err != nil {
			return nil, classify(err)
		}
		return map[string]string{"user_id": id.String(), "username": username}, nil
	})
	if err != nil {
		return User{}, fmt.Errorf("put user %s: %w", id, err)
	}
	return u, nil
}

// DeleteUser soft-deletes a live user; a trigger removes their own keys in the same transaction.
func (s *Store) DeleteUser(ctx context.Context, id uuid.UUID) error {
	err := s.change(ctx, "DeleteUser", func(tx pgx.Tx) (map[string]string, error) {
		tag, err := tx.Exec(ctx, `UPDATE users SET deleted = true, updated_at = now() WHERE id = $1 AND NOT deleted`, id)
		if err != nil {
			return nil, classify(err)
		}
		if tag.RowsAffected() == 0 {
			return nil, errNotFound("user", id)
		}
		return map[string]string{"user_id": id.String()}, nil
	})
	if err != nil {
		return fmt.Errorf("delete user %s: %w", id, err)
	}
	return nil
}

// PutChat creates chat id or changes its owner and model. The owner must be a live user and the
// model, when given, a live config.
func (s *Store) PutChat(ctx context.Context, id, ownerID, modelConfigID uuid.UUID) (Chat, error) {
	var out Chat
	err := s.change(ctx, "PutChat", func(tx pgx.Tx) (map[string]string, error) {
		if err := lockLiveUser(ctx, tx, ownerID, "owner_id"); err != nil {
			return nil, err
		}
		if modelConfigID != uuid.Nil {
			var deleted bool
			err := tx.QueryRow(ctx, `SELECT deleted FROM chat_model_configs WHERE id = $1 FOR SHARE`, modelConfigID).Scan(&deleted)
			if notFound(err) || (err == nil && deleted) {
				return nil, errs.New(errs.ModelConfigNotFound, fmt.Sprintf("model config %s does not exist", modelConfigID),
					"model_config_id", modelConfigID.String())
			}
			if err != nil {
				return nil, classify(err)
			}
		}
		var err error
		out, err = scanChat(tx.QueryRow(ctx, `INSERT INTO chats (id, owner_id, last_model_config_id) VALUES ($1, $2, $3)
ON CONFLICT (id) DO UPDATE SET owner_id = EXCLUDED.owner_id, last_model_config_id = EXCLUDED.last_model_config_id, updated_at = now()
RETURNING `+chatCols, id, ownerID, nullUUID(modelConfigID)))
		if err != nil {
			return nil, classify(err)
		}
		return map[string]string{"chat_id": id.String(), "owner_id": ownerID.String(), "model_config_id": idOrEmpty(modelConfigID)}, nil
	})
	if err != nil {
		return Chat{}, fmt.Errorf("put chat %s: %w", id, err)
	}
	return out, nil
}

// GetUser returns live user id; a missing or deleted one is NOT_FOUND.
func (s *Store) GetUser(ctx context.Context, id uuid.UUID) (User, error) {
	return get(ctx, s, "user", `SELECT `+userCols+` FROM users WHERE id = $1 AND NOT deleted`, id, scanUser)
}

// GetChat returns chat id; a missing one is NOT_FOUND.
func (s *Store) GetChat(ctx context.Context, id uuid.UUID) (Chat, error) {
	return get(ctx, s, "chat", `SELECT `+chatCols+` FROM chats WHERE id = $1`, id, scanChat)
}

func idOrEmpty(id uuid.UUID) string {
	if id == uuid.Nil {
		return ""
	}
	return id.String()
}
