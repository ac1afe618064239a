package db

import (
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/resolverd/resolverd/internal/resolve"
	"github.com/resolverd/resolverd/pkg/secret"
)

// Provider is an ai_providers row.
type Provider struct {
	resolve.Provider
	CreatedAt, UpdatedAt time.Time
}

// ModelConfig is a chat_model_configs row. ModelConfig.Provider is set only where the provider was
// read with it.
type ModelConfig struct {
	resolve.ModelConfig
	CreatedAt, UpdatedAt time.Time
}

// ProviderKey is an ai_provider_keys row (a central key), opened.
type ProviderKey struct {
	ID         uuid.UUID
	ProviderID uuid.UUID
	Secret     secret.String
	Enabled    bool
	CreatedAt  time.Time
	UpdatedAt  time.Time
	Health     resolve.HealthRecord
}

// UserProviderKey is a user_ai_provider_keys row (BYOK), opened.
type UserProviderKey struct {
	ID         uuid.UUID
	UserID     uuid.UUID
	ProviderID uuid.UUID
	Secret     secret.String
	CreatedAt  time.Time
	UpdatedAt  time.Time
	Health     resolve.HealthRecord
}

// User is a users row.
type User struct {
	ID        uuid.UUID
	Username  string
	Deleted   bool
	CreatedAt time.Time
	UpdatedAt time.Time
}

// Chat is a chats row.
type Chat struct {
	ID            uuid.UUID
	OwnerID       uuid.UUID
	ModelConfigID uuid.UUID // uuid.Nil when the chat has no model of its own
	CreatedAt     time.Time
	UpdatedAt     time.Time
}

// Token is an api_tokens row, without its hash.
type Token struct {
	ID        uuid.UUID
	Name      string
	Scopes    []string
	ExpiresAt *time.Time
	RevokedAt *time.Time
	CreatedAt time.Time
}

const (
	providerCols = `id, type, name, display_name, base_url, enabled, deleted, byok_policy, created_at, updated_at, central_key_policy`
	configCols   = `id, ai_provider_id, model, display_name, enabled, is_default, deleted, context_limit, compression_threshold, options, created_at, updated_at`
	userCols     = `id, username, deleted, created_at, updated_at`
	chatCols     = `id, owner_id, last_model_config_id, created_at, updated_at`
	tokenCols    = `id, name, scopes, expires_at, revoked_at, created_at`
)

func scanProvider(row pgx.Row) (Provider, error) {
	var p Provider
	var policy, keyPolicy string
	err := row.Scan(&p.ID, &p.Type, &p.Name, &p.DisplayName, &p.BaseURL, &p.Enabled, &p.Deleted, &policy, &p.CreatedAt, &p.UpdatedAt, &keyPolicy)
	p.BYOKPolicy, p.CentralKeyPolicy = resolve.BYOKPolicy(policy), resolve.CentralKeyPolicy(keyPolicy)
	return p, err
}

func scanConfig(row pgx.Row) (ModelConfig, error) {
	var c ModelConfig
	var providerID *uuid.UUID
	err := row.Scan(&c.ID, &providerID, &c.Model, &c.DisplayName, &c.Enabled, &c.IsDefault, &c.Deleted,
		&c.ContextLimit, &c.CompressionThreshold, &c.Options, &c.CreatedAt, &c.UpdatedAt)
	if providerID != nil {
		c.ProviderID = *providerID
	}
	return c, err
}

// scanConfigWithProvider scans configColumns then providerColumns of a LEFT JOIN: the provider
// columns are all NULL when the provider row does not exist.
func scanConfigWithProvider(row pgx.Row) (ModelConfig, error) {
	var c ModelConfig
	var (
		providerID *uuid.UUID
		pID        *uuid.UUID
		pType      *string
		pName      *string
		pDisplay   *string
		pBaseURL   *string
		pEnabled   *bool
		pDeleted   *bool
		pPolicy    *string
		pCreated   *time.Time
		pUpdated   *time.Time
		pKeyPolicy *string
	)
	err := row.Scan(&c.ID, &providerID, &c.Model, &c.DisplayName, &c.Enabled, &c.IsDefault, &c.Deleted,
		&c.ContextLimit, &c.CompressionThreshold, &c.Options, &c.CreatedAt, &c.UpdatedAt,
		&pID, &pType, &pName, &pDisplay, &pBaseURL, &pEnabled, &pDeleted, &pPolicy, &pCreated, &pUpdated, &pKeyPolicy)
	if err != nil {
		return c, err
	}
	if providerID != nil {
		c.ProviderID = *providerID
	}
	if pID != nil {
		c.Provider = &resolve.Provider{ID: *pID, Type: *pType, Name: *pName, DisplayName: *pDisplay,
			BaseURL: *pBaseURL, Enabled: *pEnabled, Deleted: *pDeleted, BYOKPolicy: resolve.BYOKPolicy(*pPolicy),
			CentralKeyPolicy: resolve.CentralKeyPolicy(*pKeyPolicy)}
	}
	return c, nil
}

func scanUser(row pgx.Row) (User, error) {
	var u User
	err := row.Scan(&u.ID, &u.Username, &u.Deleted, &u.CreatedAt, &u.UpdatedAt)
	return u, err
}

func scanChat(row pgx.Row) (Chat, error) {
	var c Chat
	var model *uuid.UUID
	err := row.Scan(&c.ID, &c.OwnerID, &model, &c.CreatedAt, &c.UpdatedAt)
	if model != nil {
		c.ModelConfigID = *model
	}
	return c, err
}

func scanToken(row pgx.Row) (Token, error) {
	var t Token
	err := row.Scan(&t.ID, &t.Name, &t.Scopes, &t.ExpiresAt, &t.RevokedAt, &t.CreatedAt)
	return t, err
}

// collect scans every row with scan.
func collect[T any](rows pgx.Rows, scan func(pgx.Row) (T, error)) ([]T, error) {
	defer rows.Close()
	var out []T
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, rows.Err()
}
