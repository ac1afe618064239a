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
	var out Provider
	err := s.change(ctx, "CreateProvider", func(tx pgx.Tx) (changed, error) {
		var err error
		out, err = scanProvider(tx.QueryRow(ctx, `INSERT INTO ai_providers (id, type, name, display_name, base_url, enabled, byok_policy, central_key_policy)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING `+providerCols,
			p.ID, p.Type, p.Name, p.DisplayName, p.BaseURL, p.Enabled, string(p.BYOKPolicy), string(keyPolicyOr(p.CentralKeyPolicy))))
		if err != nil {
			return changed{}, classify(err)
		}
		return changed{providerDetails(out), created(providerFields(out))}, nil
	})
	if err != nil {
		return Provider{}, fmt.Errorf("create provider %q: %w", p.Name, err)
	}
	return out, nil
}

// UpdateProvider locks the live provider id, lets mutate change it, and writes it back, all in one
// transaction. A missing or deleted provider is NOT_FOUND.
func (s *Store) UpdateProvider(ctx context.Context, id uuid.UUID, mutate func(*Provider) error) (Provider, error) {
	var out Provider
	err := s.change(ctx, "UpdateProvider", func(tx pgx.Tx) (changed, error) {
		p, err := scanProvider(tx.QueryRow(ctx, `SELECT `+providerCols+` FROM ai_providers WHERE id = $1 AND NOT deleted FOR UPDATE`, id))
		if notFound(err) {
			return changed{}, errNotFound("provider", id)
		}
		if err != nil {
			return changed{}, classify(err)
		}
		before := providerFields(p)
		if err := mutate(&p); err != nil {
			return changed{}, err
		}
		out, err = scanProvider(tx.QueryRow(ctx, `UPDATE ai_providers SET name = $2, display_name = $3, base_url = $4,
enabled = $5, byok_policy = $6, central_key_policy = $7, updated_at = now() WHERE id = $1 RETURNING `+providerCols,
			id, p.Name, p.DisplayName, p.BaseURL, p.Enabled, string(p.BYOKPolicy), string(keyPolicyOr(p.CentralKeyPolicy))))
		if err != nil {
			return changed{}, classify(err)
		}
		return changed{providerDetails(out), diff(before, providerFields(out))}, nil
	})
	if err != nil {
		return Provider{}, fmt.Errorf("update provider %s: %w", id, err)
	}
	return out, nil
}

// DeleteProvider soft-deletes (and so disables) a live provider. Its name becomes free again.
func (s *Store) DeleteProvider(ctx context.Context, id uuid.UUID) error {
	err := s.change(ctx, "DeleteProvider", func(tx pgx.Tx) (changed, error) {
		p, err := scanProvider(tx.QueryRow(ctx, `SELECT `+providerCols+` FROM ai_providers WHERE id = $1 AND NOT deleted FOR UPDATE`, id))
		if notFound(err) {
			return changed{}, errNotFound("provider", id)
		}
		if err != nil {
			return changed{}, classify(err)
		}
		if _, err := tx.Exec(ctx, `UPDATE ai_providers SET deleted = true, enabled = false, updated_at = now() WHERE id = $1`, id); err != nil {
			return changed{}, classify(err)
		}
		return changed{map[string]string{"provider_id": id.String()}, deleted(providerFields(p))}, nil
	})
	if err != nil {
		return fmt.Errorf("delete provider %s: %w", id, err)
	}
	return nil
}

// providerDetails is what the audit trail keeps of a provider change besides its changes.
func providerDetails(p Provider) map[string]string {
	return map[string]string{"provider_id": p.ID.String(), "name": p.Name, "type": p.Type,
		"enabled": fmt.Sprint(p.Enabled), "byok_policy": string(p.BYOKPolicy), "central_key_policy": string(p.CentralKeyPolicy)}
}

// providerFields are a provider's fields as its audit records list them.
func providerFields(p Provider) []field {
	return []field{{"type", p.Type}, {"name", p.Name}, {"display_name", p.DisplayName}, {"base_url", p.BaseURL},
		{"enabled", fmt.Sprint(p.Enabled)}, {"byok_policy", string(p.BYOKPolicy)}, {"central_key_policy", string(p.CentralKeyPolicy)}}
}

// keyPolicyOr is p, or the default policy when p is unset.
func keyPolicyOr(p resolve.CentralKeyPolicy) resolve.CentralKeyPolicy {
	if p == "" {
		return resolve.PolicyOldest
	}
	return p
}

// ListProviders returns a page of the live providers, by name (then id).
func (s *Store) ListProviders(ctx context.Context, p Page[ProviderPos]) ([]Provider, error) {
	var name *string
	var id *uuid.UUID
	if p.After != nil {
		name, id = &p.After.Name, &p.After.ID
	}
	return list(ctx, s, "providers", `SELECT `+providerCols+` FROM ai_providers
WHERE NOT deleted AND ($1::text IS NULL OR (name, id) > ($1::text, $2::uuid))
ORDER BY name, id LIMIT $3`, scanProvider, name, id, p.limit())
}

// GetProvider returns live provider id; a missing or deleted one is NOT_FOUND.
func (s *Store) GetProvider(ctx context.Context, id uuid.UUID) (Provider, error) {
	return get(ctx, s, "provider", `SELECT `+providerCols+` FROM ai_providers WHERE id = $1 AND NOT deleted`, id, scanProvider)
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
