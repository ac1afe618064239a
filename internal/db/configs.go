package db

import (
	"context"
	"fmt"
	"strings"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/resolverd/resolverd/internal/resolve"
)

// CreateModelConfig inserts c for a live provider. When c is the default it takes the flag from the
// previous default in the same transaction.
func (s *Store) CreateModelConfig(ctx context.Context, c resolve.ModelConfig) (ModelConfig, error) {
	var out ModelConfig
	err := s.change(ctx, "CreateModelConfig", func(tx pgx.Tx) (changed, error) {
		if err := lockLiveProvider(ctx, tx, c.ProviderID, "ai_provider_id", false, forShare); err != nil {
			return changed{}, err
		}
		var cleared []string
		if c.IsDefault {
			var err error
			if cleared, err = clearDefault(ctx, tx, c.ID); err != nil {
				return changed{}, err
			}
		}
		var err error
		out, err = scanConfig(tx.QueryRow(ctx, `INSERT INTO chat_model_configs (id, ai_provider_id, model, display_name,
enabled, is_default, context_limit, compression_threshold, options)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING `+configCols,
			c.ID, c.ProviderID, c.Model, c.DisplayName, c.Enabled, c.IsDefault, c.ContextLimit, c.CompressionThreshold, c.Options))
		if err != nil {
			return changed{}, classify(err)
		}
		return changed{configDetails(out, cleared), created(configFields(out))}, nil
	})
	if err != nil {
		return ModelConfig{}, fmt.Errorf("create model config %q: %w", c.Model, err)
	}
	return out, nil
}

// UpdateModelConfig locks the live config id, lets mutate change it, and writes it back in one
// transaction; a new provider must be live, and becoming the default takes the flag from the
// previous default. A missing or deleted config is NOT_FOUND.
func (s *Store) UpdateModelConfig(ctx context.Context, id uuid.UUID, mutate func(*ModelConfig) error) (ModelConfig, error) {
	var out ModelConfig
	err := s.change(ctx, "UpdateModelConfig", func(tx pgx.Tx) (changed, error) {
		c, err := scanConfig(tx.QueryRow(ctx, `SELECT `+configCols+` FROM chat_model_configs WHERE id = $1 AND NOT deleted FOR UPDATE`, id))
		if notFound(err) {
			return changed{}, errNotFound("model config", id)
		}
		if err != nil {
			return changed{}, classify(err)
		}
		before := c
		if err := mutate(&c); err != nil {
			return changed{}, err
		}
		if c.ProviderID != before.ProviderID {
			if err := lockLiveProvider(ctx, tx, c.ProviderID, "ai_provider_id", false, forShare); err != nil {
				return changed{}, err
			}
		}
		var cleared []string
		if c.IsDefault && !before.IsDefault {
			if cleared, err = clearDefault(ctx, tx, id); err != nil {
				return changed{}, err
			}
		}
		out, err = scanConfig(tx.QueryRow(ctx, `UPDATE chat_model_configs SET ai_provider_id = $2, model = $3,
display_name = $4, enabled = $5, is_default = $6, context_limit = $7, compression_threshold = $8, options = $9,
updated_at = now() WHERE id = $1 RETURNING `+configCols,
			id, c.ProviderID, c.Model, c.DisplayName, c.Enabled, c.IsDefault, c.ContextLimit, c.CompressionThreshold, c.Options))
		if err != nil {
			return changed{}, classify(err)
		}
		return changed{configDetails(out, cleared), diff(configFields(before), configFields(out))}, nil
	})
	if err != nil {
		return ModelConfig{}, fmt.Errorf("update model config %s: %w", id, err)
	}
	return out, nil
}

// clearDefault takes the default flag off every live config but except, and returns their ids.
// Writers that set a default serialise on an advisory lock, so two of them cannot both see "no
// other default" and collide.
func clearDefault(ctx context.Context, tx pgx.Tx, except uuid.UUID) ([]string, error) {
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtext('resolverd.chat_model_configs.is_default'))`); err != nil {
		return nil, classify(err)
	}
	rows, err := tx.Query(ctx, `UPDATE chat_model_configs SET is_default = false, updated_at = now()
WHERE is_default AND NOT deleted AND id <> $1 RETURNING id::text`, except)
	if err != nil {
		return nil, classify(err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	return ids, classify(err)
}

// DeleteModelConfig soft-deletes a live config.
func (s *Store) DeleteModelConfig(ctx context.Context, id uuid.UUID) error {
	err := s.change(ctx, "DeleteModelConfig", func(tx pgx.Tx) (changed, error) {
		// Deleting changes no field but deleted: the row as returned is the row before.
		c, err := scanConfig(tx.QueryRow(ctx, `UPDATE chat_model_configs SET deleted = true, updated_at = now()
WHERE id = $1 AND NOT deleted RETURNING `+configCols, id))
		if notFound(err) {
			return changed{}, errNotFound("model config", id)
		}
		if err != nil {
			return changed{}, classify(err)
		}
		return changed{map[string]string{"model_config_id": id.String()}, deleted(configFields(c))}, nil
	})
	if err != nil {
		return fmt.Errorf("delete model config %s: %w", id, err)
	}
	return nil
}

// configDetails is what the audit trail keeps of a model config change besides its changes:
// cleared are the configs that lost the default flag to it.
func configDetails(c ModelConfig, cleared []string) map[string]string {
	d := map[string]string{"model_config_id": c.ID.String(), "provider_id": c.ProviderID.String(), "model": c.Model,
		"enabled": fmt.Sprint(c.Enabled), "is_default": fmt.Sprint(c.IsDefault)}
	if len(cleared) > 0 {
		d["previous_default_model_config_id"] = strings.Join(cleared, " ")
	}
	return d
}

// configFields are a model config's fields as its audit records list them.
func configFields(c ModelConfig) []field {
	return []field{{"ai_provider_id", idOrEmpty(c.ProviderID)}, {"model", c.Model}, {"display_name", c.DisplayName},
		{"enabled", fmt.Sprint(c.Enabled)}, {"is_default", fmt.Sprint(c.IsDefault)},
		{"context_limit", fmt.Sprint(c.ContextLimit)}, {"compression_threshold", fmt.Sprint(c.CompressionThreshold)},
		{"options", string(c.Options)}}
}

// ListModelConfigs returns a page of the live configs: the default first, then by display name,
// model and id. (NOT is_default sorts the default, true, first.)
func (s *Store) ListModelConfigs(ctx context.Context, p Page[ModelConfigPos]) ([]ModelConfig, error) {
	var (
		isDefault      *bool
		display, model *string
		id             *uuid.UUID
	)
	if a := p.After; a != nil {
		isDefault, display, model, id = &a.IsDefault, &a.DisplayName, &a.Model, &a.ID
	}
	return list(ctx, s, "model configs", `SELECT `+configCols+` FROM chat_model_configs
WHERE NOT deleted AND ($1::boolean IS NULL OR
  (NOT is_default, display_name, model, id) > (NOT $1::boolean, $2::text, $3::text, $4::uuid))
ORDER BY NOT is_default, display_name, model, id LIMIT $5`, scanConfig, isDefault, display, model, id, p.limit())
}

// GetModelConfig returns live config id; a missing or deleted one is NOT_FOUND.
func (s *Store) GetModelConfig(ctx context.Context, id uuid.UUID) (ModelConfig, error) {
	return get(ctx, s, "model config", `SELECT `+configCols+` FROM chat_model_configs WHERE id = $1 AND NOT deleted`, id, scanConfig)
}
