package db

import (
	"context"
	"fmt"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/resolverd/resolverd/internal/errs"
	"github.com/resolverd/resolverd/internal/resolve"
)

// CreateProvider inserts p (its ID chosen by the caller).
func (s *Store) CreateProvider(ctx context.Context, p resolve.Provider) (Provider, error) {
	row := s.pool.QueryRow(ctx, `INSERT INTO ai_providers (id, type, name, display_name, base_url, enabled, byok_policy)
VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING `+providerCols,
		p.ID, p.Type, p.Name, p.DisplayName, p.BaseURL, p.Enabled, string(p.BYOKPolicy))
	out, err := scanProvider(row)
	if err != nil {
		return Provider{}, fmt.Errorf("create provider %q: %w", p.Name, classify(err))
	}
	return out, nil
}

// UpdateProvider locks the live provider id, lets mutate change it, and writes it back, all in one
// transaction. A missing or deleted provider is NOT_FOUND.
func (s *Store) UpdateProvider(ctx context.Context, id uuid.UUID, mutate func(*Provider) error) (Provider, error) {
	var out Provider
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		p, err := scanProvider(tx.QueryRow(ctx, `SELECT `+providerCols+` FROM ai_providers WHERE id = $1 AND NOT deleted FOR UPDATE`, id))
		if notFound(err) {
			return errNotFound("provider", id)
		}
		if err != nil {
			return classify(err)
		}
		if err := mutate(&p); err != nil {
			return err
		}
		out, err = scanProvider(tx.QueryRow(ctx, `UPDATE ai_providers SET name = $2, display_name = $3, base_url = $4,
enabled = $5, byok_policy = $6, updated_at = now() WHERE id = $1 RETURNING `+providerCols,
			id, p.Name, p.DisplayName, p.BaseURL, p.Enabled, string(p.BYOKPolicy)))
		return classify(err)
	})
	if err != nil {
		return Provider{}, fmt.Errorf("update provider %s: %w", id, err)
	}
	return out, nil
}

// DeleteProvider soft-deletes (and so disables) a live provider. Its name becomes free again.
func (s *Store) DeleteProvider(ctx context.Context, id uuid.UUID) error {
	tag, err := s.pool.Exec(ctx, `UPDATE ai_providers SET deleted = true, enabled = false, updated_at = now()
WHERE id = $1 AND NOT deleted`, id)
	if err != nil {
		return fmt.Errorf("delete provider %s: %w", id, classify(err))
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("delete provider %s: %w", id, errNotFound("provider", id))
	}
	return nil
}

// ListProviders returns the live providers by name.
func (s *Store) ListProviders(ctx context.Context) ([]Provider, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+providerCols+` FROM ai_providers WHERE NOT deleted ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("list providers: %w", classify(err))
	}
	out, err := collect(rows, scanProvider)
	if err != nil {
		return nil, fmt.Errorf("list providers: %w", classify(err))
	}
	return out, nil
}

// lockMode is how a transaction holds a provider row it depends on.
type lockMode string

const (
	// forShare keeps the provider from being disabled or deleted until the transaction commits;
	// share holders do not wait for each other.
	forShare lockMode = "FOR SHARE"
	// forUpdate also serialises the writers that read and then change the provider's keys, such as
	// two rotations: each must see the keys the other added.
	forUpdate lockMode = "FOR UPDATE"
)

// lockLiveProvider locks provider id for the rest of tx and fails unless it is live.
// requireEnabled also refuses a disabled provider.
func lockLiveProvider(ctx context.Context, tx pgx.Tx, id uuid.UUID, field string, requireEnabled bool, mode lockMode) error {
	var enabled, deleted bool
	err := tx.QueryRow(ctx, `SELECT enabled, deleted FROM ai_providers WHERE id = $1 `+string(mode), id).Scan(&enabled, &deleted)
	if notFound(err) || (err == nil && deleted) {
		return errs.New(errs.ProviderNotFound, fmt.Sprintf("provider %s does not exist", id), field, id.String())
	}
	if err != nil {
		return classify(err)
	}
	if requireEnabled && !enabled {
		return errs.New(errs.ProviderDisabled, fmt.Sprintf("provider %s is disabled", id), field, id.String())
	}
	return nil
}

// errNotFound is the NOT_FOUND of an admin update or delete whose target row does not exist.
func errNotFound(what string, id uuid.UUID) error {
	return errs.New(errs.NotFound, fmt.Sprintf("%s %s does not exist", what, id), "id", id.String())
}
