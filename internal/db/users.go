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
	u, err := scanUser(s.pool.QueryRow(ctx, `INSERT INTO users (id, username) VALUES ($1, $2)
ON CONFLICT (id) DO UPDATE SET username = EXCLUDED.username, deleted = false, updated_at = now()
RETURNING `+userCols, id, username))
	if err != nil {
		return User{}, fmt.Errorf("put user %s: %w", id, classify(err))
	}
	return u, nil
}

// DeleteUser soft-deletes a live user; a trigger removes their own keys in the same transaction.
func (s *Store) DeleteUser(ctx context.Context, id uuid.UUID) error {
	tag, err := s.pool.Exec(ctx, `UPDATE users SET deleted = true, updated_at = now() WHERE id = $1 AND NOT deleted`, id)
	if err != nil {
		return fmt.Errorf("delete user %s: %w", id, classify(err))
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("delete user %s: %w", id, errNotFound("user", id))
	}
	return nil
}

// PutChat creates chat id or changes its owner and model. The owner must be a live user and the
// model, when given, a live config.
func (s *Store) PutChat(ctx context.Context, id, ownerID, modelConfigID uuid.UUID) (Chat, error) {
	var out Chat
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		if err := lockLiveUser(ctx, tx, ownerID, "owner_id"); err != nil {
			return err
		}
		if modelConfigID != uuid.Nil {
			var deleted bool
			err := tx.QueryRow(ctx, `SELECT deleted FROM chat_model_configs WHERE id = $1 FOR SHARE`, modelConfigID).Scan(&deleted)
			if notFound(err) || (err == nil && deleted) {
				return errs.New(errs.ModelConfigNotFound, fmt.Sprintf("model config %s does not exist", modelConfigID),
					"model_config_id", modelConfigID.String())
			}
			if err != nil {
				return classify(err)
			}
		}
		var err error
		out, err = scanChat(tx.QueryRow(ctx, `INSERT INTO chats (id, owner_id, last_model_config_id) VALUES ($1, $2, $3)
ON CONFLICT (id) DO UPDATE SET owner_id = EXCLUDED.owner_id, last_model_config_id = EXCLUDED.last_model_config_id, updated_at = now()
RETURNING `+chatCols, id, ownerID, nullUUID(modelConfigID)))
		return classify(err)
	})
	if err != nil {
		return Chat{}, fmt.Errorf("put chat %s: %w", id, err)
	}
	return out, nil
}
