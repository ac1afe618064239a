package db

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
)

// Page asks a List method for one page: the rows that come after After in the list's order (from
// the first row when After is nil), at most Limit of them (all of them when Limit is 0).
//
// Paging is keyset paging, done in SQL: After is the position of the last row of the previous page,
// so every page costs the same wherever it starts, and rows added or removed between pages neither
// repeat nor hide the rows that stay.
type Page[P any] struct {
	Limit int
	After *P
}

// limit is the LIMIT parameter: NULL (no limit) for 0.
func (p Page[P]) limit() *int {
	if p.Limit <= 0 {
		return nil
	}
	return &p.Limit
}

// ProviderPos is a provider's place in ListProviders' order: by name, then id.
type ProviderPos struct {
	Name string
	ID   uuid.UUID
}

// Pos is p's place in ListProviders' order.
func (p Provider) Pos() ProviderPos { return ProviderPos{Name: p.Name, ID: p.ID} }

// ProviderKeyPos is a key's place in ListProviderKeys' order: by provider id, then oldest first,
// then id.
type ProviderKeyPos struct {
	ProviderID uuid.UUID
	CreatedAt  time.Time
	ID         uuid.UUID
}

// Pos is k's place in ListProviderKeys' order.
func (k ProviderKey) Pos() ProviderKeyPos {
	return ProviderKeyPos{ProviderID: k.ProviderID, CreatedAt: k.CreatedAt, ID: k.ID}
}

// UserProviderKeyPos is a user's key's place in ListUserProviderKeys' order: by provider id, then id.
type UserProviderKeyPos struct {
	ProviderID uuid.UUID
	ID         uuid.UUID
}

// Pos is k's place in ListUserProviderKeys' order.
func (k UserProviderKey) Pos() UserProviderKeyPos {
	return UserProviderKeyPos{ProviderID: k.ProviderID, ID: k.ID}
}

// ModelConfigPos is a config's place in ListModelConfigs' order: the default first, then by display
// name, model and id.
type ModelConfigPos struct {
	IsDefault   bool
	DisplayName string
	Model       string
	ID          uuid.UUID
}

// Pos is c's place in ListModelConfigs' order.
func (c ModelConfig) Pos() ModelConfigPos {
	return ModelConfigPos{IsDefault: c.IsDefault, DisplayName: c.DisplayName, Model: c.Model, ID: c.ID}
}

// TokenPos is a token's place in ListTokens' order: newest first, then by id.
type TokenPos struct {
	CreatedAt time.Time
	ID        uuid.UUID
}

// Pos is t's place in ListTokens' order.
func (t Token) Pos() TokenPos { return TokenPos{CreatedAt: t.CreatedAt, ID: t.ID} }

// list runs a List query and scans its rows; what names the list in errors.
func list[T any](ctx context.Context, s *Store, what, query string, scan func(pgx.Row) (T, error), args ...any) ([]T, error) {
	rows, err := s.pool.Query(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", what, classify(err))
	}
	out, err := collect(rows, scan)
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", what, classify(err))
	}
	return out, nil
}

// get reads the one row query returns for id; no row is the NOT_FOUND of an admin call on a
// missing row (metadata "id"), as Update* and Delete* answer.
func get[T any](ctx context.Context, s *Store, what, query string, id uuid.UUID, scan func(pgx.Row) (T, error)) (T, error) {
	v, err := scan(s.pool.QueryRow(ctx, query, id))
	if notFound(err) {
		err = errNotFound(what, id)
	} else {
		err = classify(err)
	}
	if err != nil {
		var zero T
		return zero, fmt.Errorf("get %s %s: %w", what, id, err)
	}
	return v, nil
}
