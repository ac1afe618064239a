// Package dbauthz puts the scope checks of docs/CONTRACT.md §3 where rows are read and written: it wraps
// the database store, and every method requires the caller's scope for the tables it touches before
// it reaches the database. The gRPC handlers are given only this wrapper, so no handler can read a
// row without passing the check (Coder's dbauthz idea).
package dbauthz

import (
	"context"
	"time"

	"github.com/google/uuid"

	"github.com/resolverd/resolverd/internal/db"
	"github.com/resolverd/resolverd/internal/rbac"
	"github.com/resolverd/resolverd/internal/resolve"
	"github.com/resolverd/resolverd/pkg/secret"
)

// Querier is the part of *db.Store the wrapper guards.
type Querier interface {
	ResolutionSnapshot(ctx context.Context, chatID, requestedConfigID uuid.UUID, prefetch db.Prefetch) (*resolve.Snapshot, error)
	UserKey(ctx context.Context, userID, providerID uuid.UUID) (*resolve.Key, error)
	EnabledCentralKeys(ctx context.Context, providerID uuid.UUID) ([]*resolve.Key, error)
	ReportCredentialOutcome(ctx context.Context, keyID uuid.UUID, outcome resolve.Outcome, retryAfter time.Duration) (db.KeyReport, error)

	CreateProvider(ctx context.Context, p resolve.Provider) (db.Provider, error)
	UpdateProvider(ctx context.Context, id uuid.UUID, mutate func(*db.Provider) error) (db.Provider, error)
	DeleteProvider(ctx context.Context, id uuid.UUID) error
	GetProvider(ctx context.Context, id uuid.UUID) (db.Provider, error)
	ListProviders(ctx context.Context, p db.Page[db.ProviderPos]) ([]db.Provider, error)

	AddProviderKey(ctx context.Context, id, providerID uuid.UUID, key secret.String, enabled bool) (db.ProviderKey, error)
	RotateProviderKey(ctx context.Context, id, providerID uuid.UUID, key secret.String) (db.ProviderKey, error)
	SetProviderKeyEnabled(ctx context.Context, id uuid.UUID, enabled bool) (db.ProviderKey, error)
	DeleteProviderKey(ctx context.Context, id uuid.UUID) error
	ListProviderKeys(ctx context.Context, providerID uuid.UUID, p db.Page[db.ProviderKeyPos]) ([]db.ProviderKey, error)

	CreateModelConfig(ctx context.Context, c resolve.ModelConfig) (db.ModelConfig, error)
	UpdateModelConfig(ctx context.Context, id uuid.UUID, mutate func(*db.ModelConfig) error) (db.ModelConfig, error)
	DeleteModelConfig(ctx context.Context, id uuid.UUID) error
	GetModelConfig(ctx context.Context, id uuid.UUID) (db.ModelConfig, error)
	ListModelConfigs(ctx context.Context, p db.Page[db.ModelConfigPos]) ([]db.ModelConfig, error)

	PutUser(ctx context.Context, id uuid.UUID, username string) (db.User, error)
	DeleteUser(ctx context.Context, id uuid.UUID) error
	GetUser(ctx context.Context, id uuid.UUID) (db.User, error)
	PutUserProviderKey(ctx context.Context, id, userID, providerID uuid.UUID, key secret.String) (db.UserProviderKey, error)
	DeleteUserProviderKey(ctx context.Context, id uuid.UUID) error
	ListUserProviderKeys(ctx context.Context, userID uuid.UUID, p db.Page[db.UserProviderKeyPos]) ([]db.UserProviderKey, error)
	PutChat(ctx context.Context, id, ownerID, modelConfigID uuid.UUID) (db.Chat, error)
	GetChat(ctx context.Context, id uuid.UUID) (db.Chat, error)

	CreateToken(ctx context.Context, id uuid.UUID, name string, scopes []string, hash []byte, expiresAt *time.Time) (db.Token, error)
	RevokeToken(ctx context.Context, id uuid.UUID, allowed func(scopes []string) error) error
	GetToken(ctx context.Context, id uuid.UUID) (db.Token, error)
	ListTokens(ctx context.Context, p db.Page[db.TokenPos]) ([]db.Token, error)

	ListAuditEvents(ctx context.Context, f db.AuditFilter) ([]db.AuditEvent, error)

	// What only system actors do (system.go).
	ActiveToken(ctx context.Context, hash []byte) (db.Token, bool, error)
	InsertAuditEvents(ctx context.Context, events []db.AuditEvent) error
	DeleteAuditEventsBefore(ctx context.Context, cutoff time.Time, limit int) (int64, error)
	EnsureAuditPartitions(ctx context.Context, now time.Time, ahead int) ([]string, error)
	DropAuditPartitionsBefore(ctx context.Context, cutoff time.Time) (db.AuditExpiry, error)
	FingerprintKey(ctx context.Context) ([]byte, error)
	UnavailableCentralKeys(ctx context.Context) (map[string]int, error)

	identityQuerier // workload identities (identities.go)
}

var _ Querier = (*db.Store)(nil)

// Store is the scope-checked store. It implements resolve.Source.
type Store struct {
	q Querier
}

// New wraps q.
func New(q Querier) *Store { return &Store{q: q} }

var _ resolve.Source = (*Store)(nil)

// Snapshot reads chats, chat_model_configs and ai_providers. It lets the store read ahead the key
// tables the caller may read (so a cold resolution is one round trip); serving a key still goes
// through UserKey or CentralKeys and their scope checks.
func (s *Store) Snapshot(ctx context.Context, chatID, requestedConfigID uuid.UUID) (*resolve.Snapshot, error) {
	if err := rbac.Require(ctx, rbac.ChatRead, rbac.ModelConfigRead, rbac.AIProviderRead); err != nil {
		return nil, err
	}
	p, _ := rbac.FromContext(ctx)
	pre := db.Prefetch{UserKeys: p.Has(rbac.UserAIProviderKeyRead), CentralKeys: p.Has(rbac.AIProviderKeyRead)}
	return s.q.ResolutionSnapshot(ctx, chatID, requestedConfigID, pre)
}

// UserKey reads user_ai_provider_keys.
func (s *Store) UserKey(ctx context.Context, userID, providerID uuid.UUID) (*resolve.Key, error) {
	if err := rbac.Require(ctx, rbac.UserAIProviderKeyRead); err != nil {
		return nil, err
	}
	return s.q.UserKey(ctx, userID, providerID)
}

// CentralKeys reads ai_provider_keys: the provider's enabled keys with their health.
func (s *Store) CentralKeys(ctx context.Context, providerID uuid.UUID) ([]*resolve.Key, error) {
	if err := rbac.Require(ctx, rbac.AIProviderKeyRead); err != nil {
		return nil, err
	}
	return s.q.EnabledCentralKeys(ctx, providerID)
}

// ReportCredentialOutcome writes the health of the one key row it names, in ai_provider_keys or
// user_ai_provider_keys: credential:report, which grants that and nothing else — no key is read
// and no other row is written (docs/CONTRACT.md §17).
func (s *Store) ReportCredentialOutcome(ctx context.Context, keyID uuid.UUID, outcome resolve.Outcome, retryAfter time.Duration) (db.KeyReport, error) {
	if err := rbac.Require(ctx, rbac.CredentialReport); err != nil {
		return db.KeyReport{}, err
	}
	return s.q.ReportCredentialOutcome(ctx, keyID, outcome, retryAfter)
}

// CreateProvider also needs, for a non-empty base_url, the scopes that read provider keys, as
// UpdateProvider does to change one: a bedrock provider answers with the workers' ambient cloud
// credentials, and any new provider can be given keys and made the default, so choosing where it
// sends them is as good as reading them (docs/CONTRACT.md §3.3).
func (s *Store) CreateProvider(ctx context.Context, p resolve.Provider) (db.Provider, error) {
	if err := rbac.Require(ctx, rbac.AIProviderWrite); err != nil {
		return db.Provider{}, err
	}
	if p.BaseURL != "" {
		if err := rbac.Require(ctx, KeysOfProviderScopes...); err != nil {
			return db.Provider{}, err
		}
	}
	return s.q.CreateProvider(ctx, p)
}

// UpdateProvider also needs, to change base_url, the scopes that read the provider's keys
// (ai_provider_key:read and user_ai_provider_key:read): base_url decides where workers send
// those keys, so pointing it elsewhere is as good as reading them.
func (s *Store) UpdateProvider(ctx context.Context, id uuid.UUID, mutate func(*db.Provider) error) (db.Provider, error) {
	if err := rbac.Require(ctx, rbac.AIProviderWrite); err != nil {
		return db.Provider{}, err
	}
	return s.q.UpdateProvider(ctx, id, func(p *db.Provider) error {
		before := p.BaseURL
		if err := mutate(p); err != nil {
			return err
		}
		if p.BaseURL != before {
			return rbac.Require(ctx, KeysOfProviderScopes...)
		}
		return nil
	})
}

// KeysOfProviderScopes are what creating a provider with a base_url, or changing its base_url,
// needs beyond ai_provider:write.
var KeysOfProviderScopes = []rbac.Scope{rbac.AIProviderKeyRead, rbac.UserAIProviderKeyRead}

func (s *Store) DeleteProvider(ctx context.Context, id uuid.UUID) error {
	if err := rbac.Require(ctx, rbac.AIProviderWrite); err != nil {
		return err
	}
	return s.q.DeleteProvider(ctx, id)
}

func (s *Store) GetProvider(ctx context.Context, id uuid.UUID) (db.Provider, error) {
	if err := rbac.Require(ctx, rbac.AIProviderRead); err != nil {
		return db.Provider{}, err
	}
	return s.q.GetProvider(ctx, id)
}

func (s *Store) ListProviders(ctx context.Context, p db.Page[db.ProviderPos]) ([]db.Provider, error) {
	if err := rbac.Require(ctx, rbac.AIProviderRead); err != nil {
		return nil, err
	}
	return s.q.ListProviders(ctx, p)
}

func (s *Store) AddProviderKey(ctx context.Context, id, providerID uuid.UUID, key secret.String, enabled bool) (db.ProviderKey, error) {
	if err := rbac.Require(ctx, rbac.AIProviderKeyWrite); err != nil {
		return db.ProviderKey{}, err
	}
	return s.q.AddProviderKey(ctx, id, providerID, key, enabled)
}

func (s *Store) RotateProviderKey(ctx context.Context, id, providerID uuid.UUID, key secret.String) (db.ProviderKey, error) {
	if err := rbac.Require(ctx, rbac.AIProviderKeyWrite); err != nil {
		return db.ProviderKey{}, err
	}
	return s.q.RotateProviderKey(ctx, id, providerID, key)
}

func (s *Store) SetProviderKeyEnabled(ctx context.Context, id uuid.UUID, enabled bool) (db.ProviderKey, error) {
	if err := rbac.Require(ctx, rbac.AIProviderKeyWrite); err != nil {
		return db.ProviderKey{}, err
	}
	return s.q.SetProviderKeyEnabled(ctx, id, enabled)
}

func (s *Store) DeleteProviderKey(ctx context.Context, id uuid.UUID) error {
	if err := rbac.Require(ctx, rbac.AIProviderKeyWrite); err != nil {
		return err
	}
	return s.q.DeleteProviderKey(ctx, id)
}

func (s *Store) ListProviderKeys(ctx context.Context, providerID uuid.UUID, p db.Page[db.ProviderKeyPos]) ([]db.ProviderKey, error) {
	if err := rbac.Require(ctx, rbac.AIProviderKeyRead); err != nil {
		return nil, err
	}
	return s.q.ListProviderKeys(ctx, providerID, p)
}

func (s *Store) CreateModelConfig(ctx context.Context, c resolve.ModelConfig) (db.ModelConfig, error) {
	if err := rbac.Require(ctx, rbac.ModelConfigWrite); err != nil {
		return db.ModelConfig{}, err
	}
	return s.q.CreateModelConfig(ctx, c)
}

func (s *Store) UpdateModelConfig(ctx context.Context, id uuid.UUID, mutate func(*db.ModelConfig) error) (db.ModelConfig, error) {
	if err := rbac.Require(ctx, rbac.ModelConfigWrite); err != nil {
		return db.ModelConfig{}, err
	}
	return s.q.UpdateModelConfig(ctx, id, mutate)
}

func (s *Store) DeleteModelConfig(ctx context.Context, id uuid.UUID) error {
	if err := rbac.Require(ctx, rbac.ModelConfigWrite); err != nil {
		return err
	}
	return s.q.DeleteModelConfig(ctx, id)
}

func (s *Store) GetModelConfig(ctx context.Context, id uuid.UUID) (db.ModelConfig, error) {
	if err := rbac.Require(ctx, rbac.ModelConfigRead); err != nil {
		return db.ModelConfig{}, err
	}
	return s.q.GetModelConfig(ctx, id)
}

func (s *Store) ListModelConfigs(ctx context.Context, p db.Page[db.ModelConfigPos]) ([]db.ModelConfig, error) {
	if err := rbac.Require(ctx, rbac.ModelConfigRead); err != nil {
		return nil, err
	}
	return s.q.ListModelConfigs(ctx, p)
}

func (s *Store) PutUser(ctx context.Context, id uuid.UUID, username string) (db.User, error) {
	if err := rbac.Require(ctx, rbac.UserWrite); err != nil {
		return db.User{}, err
	}
	return s.q.PutUser(ctx, id, username)
}

func (s *Store) DeleteUser(ctx context.Context, id uuid.UUID) error {
	if err := rbac.Require(ctx, rbac.UserWrite); err != nil {
		return err
	}
	return s.q.DeleteUser(ctx, id)
}

// GetUser needs user:write: there is no user:read scope, and the users table is read by those who
// administer it (as ListTokens needs token:write).
func (s *Store) GetUser(ctx context.Context, id uuid.UUID) (db.User, error) {
	if err := rbac.Require(ctx, rbac.UserWrite); err != nil {
		return db.User{}, err
	}
	return s.q.GetUser(ctx, id)
}

func (s *Store) PutUserProviderKey(ctx context.Context, id, userID, providerID uuid.UUID, key secret.String) (db.UserProviderKey, error) {
	if err := rbac.Require(ctx, rbac.UserAIProviderKeyWrite); err != nil {
		return db.UserProviderKey{}, err
	}
	return s.q.PutUserProviderKey(ctx, id, userID, providerID, key)
}

func (s *Store) DeleteUserProviderKey(ctx context.Context, id uuid.UUID) error {
	if err := rbac.Require(ctx, rbac.UserAIProviderKeyWrite); err != nil {
		return err
	}
	return s.q.DeleteUserProviderKey(ctx, id)
}

// ListUserProviderKeys reads user_ai_provider_keys (fingerprints and health, never the secrets).
func (s *Store) ListUserProviderKeys(ctx context.Context, userID uuid.UUID, p db.Page[db.UserProviderKeyPos]) ([]db.UserProviderKey, error) {
	if err := rbac.Require(ctx, rbac.UserAIProviderKeyRead); err != nil {
		return nil, err
	}
	return s.q.ListUserProviderKeys(ctx, userID, p)
}

func (s *Store) PutChat(ctx context.Context, id, ownerID, modelConfigID uuid.UUID) (db.Chat, error) {
	if err := rbac.Require(ctx, rbac.ChatWrite); err != nil {
		return db.Chat{}, err
	}
	return s.q.PutChat(ctx, id, ownerID, modelConfigID)
}

func (s *Store) GetChat(ctx context.Context, id uuid.UUID) (db.Chat, error) {
	if err := rbac.Require(ctx, rbac.ChatRead); err != nil {
		return db.Chat{}, err
	}
	return s.q.GetChat(ctx, id)
}

// CreateToken also refuses to grant a scope the caller does not hold.
func (s *Store) CreateToken(ctx context.Context, id uuid.UUID, name string, scopes []rbac.Scope, hash []byte, expiresAt *time.Time) (db.Token, error) {
	if err := rbac.Require(ctx, rbac.TokenWrite); err != nil {
		return db.Token{}, err
	}
	if err := rbac.CanGrant(ctx, scopes); err != nil {
		return db.Token{}, err
	}
	if err := rbac.CanGrantUntil(ctx, expiresAt); err != nil {
		return db.Token{}, err
	}
	names := make([]string, len(scopes))
	for i, sc := range scopes {
		names[i] = string(sc)
	}
	return s.q.CreateToken(ctx, id, name, names, hash, expiresAt)
}

// RevokeToken also refuses to revoke a token with a scope the caller does not hold: token:write
// can take away only what it could have granted, so a narrow token administrator cannot lock
// out the holders of wider tokens.
func (s *Store) RevokeToken(ctx context.Context, id uuid.UUID) error {
	if err := rbac.Require(ctx, rbac.TokenWrite); err != nil {
		return err
	}
	return s.q.RevokeToken(ctx, id, func(scopes []string) error {
		parsed, err := rbac.ParseScopes(scopes)
		if err != nil {
			return err
		}
		return rbac.CanGrant(ctx, parsed)
	})
}

// GetToken needs token:write, as ListTokens.
func (s *Store) GetToken(ctx context.Context, id uuid.UUID) (db.Token, error) {
	if err := rbac.Require(ctx, rbac.TokenWrite); err != nil {
		return db.Token{}, err
	}
	return s.q.GetToken(ctx, id)
}

// ListTokens needs token:write: token names and scopes are for token administrators only.
func (s *Store) ListTokens(ctx context.Context, p db.Page[db.TokenPos]) ([]db.Token, error) {
	if err := rbac.Require(ctx, rbac.TokenWrite); err != nil {
		return nil, err
	}
	return s.q.ListTokens(ctx, p)
}

// ListAuditEvents reads audit_events.
func (s *Store) ListAuditEvents(ctx context.Context, f db.AuditFilter) ([]db.AuditEvent, error) {
	if err := rbac.Require(ctx, rbac.AuditRead); err != nil {
		return nil, err
	}
	return s.q.ListAuditEvents(ctx, f)
}
