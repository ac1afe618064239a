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
	err := s.change(ctx, "PutUser", func(tx pgx.Tx) (changed, error) {
		before, existed, err := lockForPut(ctx, tx, "users", id, `SELECT `+userCols+` FROM users WHERE id = $1 FOR UPDATE`, scanUser)
		if err != nil {
			return changed{}, err
		}
		u, err = scanUser(tx.QueryRow(ctx, `INSERT INTO users (id, username) VALUES ($1, $2)
ON CONFLICT (id) DO UPDATE SET username = EXCLUDED.username, deleted = false, updated_at = now()
RETURNING `+userCols, id, username))
		if err != nil {
			return changed{}, classify(err)
		}
		d := map[string]string{"user_id": id.String(), "username": username}
		if !existed {
			return changed{d, created(userFields(u))}, nil
		}
		return changed{d, diff(userFields(before), userFields(u))}, nil
	})
	if err != nil {
		return User{}, fmt.Errorf("put user %s: %w", id, err)
	}
	return u, nil
}

// DeleteUser soft-deletes a live user; a trigger removes their own keys in the same transaction.
func (s *Store) DeleteUser(ctx context.Context, id uuid.UUID) error {
	err := s.change(ctx, "DeleteUser", func(tx pgx.Tx) (changed, error) {
		// Deleting changes no field but deleted: the row as returned is the row before.
		u, err := scanUser(tx.QueryRow(ctx, `UPDATE users SET deleted = true, updated_at = now() WHERE id = $1 AND NOT deleted
RETURNING `+userCols, id))
		if notFound(err) {
			return changed{}, errNotFound("user", id)
		}
		if err != nil {
			return changed{}, classify(err)
		}
		u.Deleted = false
		return changed{map[string]string{"user_id": id.String()}, deleted(userFields(u))}, nil
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
	err := s.change(ctx, "PutChat", func(tx pgx.Tx) (changed, error) {
		if err := lockLiveUser(ctx, tx, ownerID, "owner_id"); err != nil {
			return changed{}, err
		}
		if modelConfigID != uuid.Nil {
			var deleted bool
			err := tx.QueryRow(ctx, `SELECT deleted FROM chat_model_configs WHERE id = $1 FOR SHARE`, modelConfigID).Scan(&deleted)
			if notFound(err) || (err == nil && deleted) {
				return changed{}, errs.New(errs.ModelConfigNotFound, fmt.Sprintf("model config %s does not exist", modelConfigID),
					"model_config_id", modelConfigID.String())
			}
			if err != nil {
				return changed{}, classify(err)
			}
		}
		before, existed, err := lockForPut(ctx, tx, "chats", id, `SELECT `+chatCols+` FROM chats WHERE id = $1 FOR UPDATE`, scanChat)
		if err != nil {
			return changed{}, err
		}
		out, err = scanChat(tx.QueryRow(ctx, `INSERT INTO chats (id, owner_id, last_model_config_id) VALUES ($1, $2, $3)
ON CONFLICT (id) DO UPDATE SET owner_id = EXCLUDED.owner_id, last_model_config_id = EXCLUDED.last_model_config_id, updated_at = now()
RETURNING `+chatCols, id, ownerID, nullUUID(modelConfigID)))
		if err != nil {
			return changed{}, classify(err)
		}
		d := map[string]string{"chat_id": id.String(), "owner_id": ownerID.String(), "model_config_id": idOrEmpty(modelConfigID)}
		if !existed {
			return changed{d, created(chatFields(out))}, nil
		}
		return changed{d, diff(chatFields(before), chatFields(out))}, nil
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

// lockForPut locks row id of table for a Put (an upsert) and returns it as it was, or existed
// false when there is none yet — in which case the Put's insert is the first: Puts of one id
// queue on an advisory lock, so no other Put creates the row in between.
func lockForPut[T any](ctx context.Context, tx pgx.Tx, table string, id uuid.UUID, query string, scan func(pgx.Row) (T, error)) (T, bool, error) {
	var zero T
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtext('resolverd.put.' || $1::text), hashtext($2::text))`, table, id); err != nil {
		return zero, false, classify(err)
	}
	row, err := scan(tx.QueryRow(ctx, query, id))
	if notFound(err) {
		return zero, false, nil
	}
	if err != nil {
		return zero, false, classify(err)
	}
	return row, true, nil
}

// userFields are a user's fields as its audit records list them.
func userFields(u User) []field {
	return []field{{"username", u.Username}, {"deleted", fmt.Sprint(u.Deleted)}}
}

// chatFields are a chat's fields as its audit records list them.
func chatFields(c Chat) []field {
	return []field{{"owner_id", c.OwnerID.String()}, {"model_config_id", idOrEmpty(c.ModelConfigID)}}
}

func idOrEmpty(id uuid.UUID) string {
	if id == uuid.Nil {
		return ""
	}
	return id.String()
}
