// Package db is the only package that speaks SQL. It reads and writes resolverd's tables with pgx,
// seals secrets before they reach PostgreSQL and opens them when they are read, and turns PostgreSQL
// failures into the errors of internal/errs (errors.go). It checks no scopes: internal/dbauthz wraps
// it, and the gRPC handlers only ever see the wrapper.
package db

import (
	"context"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/resolverd/resolverd/internal/auditchain"
	"github.com/resolverd/resolverd/internal/keyring"
	"github.com/resolverd/resolverd/pkg/secret"
)

// Sealer encrypts secrets for storage and decrypts them when read (*keyring.Keyring). Every value
// is bound to its place (docs/CONTRACT.md §7.1). keyID is the id of the encryption key that sealed
// a value; nil means plain text carried over from the legacy layout.
type Sealer interface {
	Seal(s secret.String, at keyring.Place) (sealed string, keyID string, err error)
	// SealUnbound seals in the format releases before schema version 10 read (keys rotate --format 1).
	SealUnbound(s secret.String) (sealed string, keyID string, err error)
	Open(sealed string, keyID *string, at keyring.Place) (secret.String, error)
}

// Store reads and writes resolverd's tables.
type Store struct {
	pool   *pgxpool.Pool
	sealer Sealer

	mu    sync.Mutex
	fpKey []byte // read once: it never changes

	// unreadable hears of every stored secret that did not open (secrets.go).
	unreadable atomic.Pointer[func(context.Context, UnreadableSecret)]
	// This store's audit chains (audit.go), when the sealer derives keys: one for the batched
	// records, one for the admin changes. nil: records are written unchained.
	batches, changes *auditchain.Chain
}

// New returns a Store over pool. A sealer that derives keys (*keyring.Keyring) also keys the
// store's audit chains (docs/CONTRACT.md §7.4).
func New(pool *pgxpool.Pool, sealer Sealer) *Store {
	s := &Store{pool: pool, sealer: sealer}
	if d, ok := sealer.(auditchain.Deriver); ok {
		s.batches, s.changes = auditchain.New(d), auditchain.New(d)
	}
	return s
}

// Chained reports whether the store chains its audit records (its sealer derives keys).
func (s *Store) Chained() bool { return s.batches != nil }

// Pool returns the connection pool, for health checks and shutdown.
func (s *Store) Pool() *pgxpool.Pool { return s.pool }

// Connect opens a connection pool and checks that the database answers.
func Connect(ctx context.Context, url string) (*pgxpool.Pool, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		// pgx's message can quote the URL, password included; say only what is wrong in general.
		return nil, fmt.Errorf("parse the database URL: it must look like postgres://user:password@host:5432/dbname")
	}
	cfg.ConnConfig.RuntimeParams["application_name"] = "resolverd"
	// pgxpool's default (4 connections on a small machine) queues cold resolutions, admin calls,
	// the audit writer and the health check behind each other; a URL's pool_max_conns still wins.
	if !strings.Contains(url, "pool_max_conns") {
		cfg.MaxConns = int32(max(16, 4*runtime.GOMAXPROCS(0)))
	}
	if cfg.ConnConfig.ConnectTimeout == 0 {
		cfg.ConnConfig.ConnectTimeout = 5 * time.Second
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("open the database pool: %w", classify(err))
	}
	pingCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := pool.Ping(pingCtx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("connect to the database at %s:%d: %w", cfg.ConnConfig.Host, cfg.ConnConfig.Port, classify(err))
	}
	return pool, nil
}

// Ping checks that the database answers.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.pool.Ping(ctx); err != nil {
		return fmt.Errorf("ping the database: %w", classify(err))
	}
	return nil
}

// FingerprintKey reads the key of the credential fingerprints (one per deployment, so every replica
// and restart computes the same fingerprint).
func (s *Store) FingerprintKey(ctx context.Context) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fpKey != nil {
		return s.fpKey, nil
	}
	var key []byte
	if err := s.pool.QueryRow(ctx, `SELECT fingerprint_key FROM resolver_settings`).Scan(&key); err != nil {
		return nil, fmt.Errorf("read the fingerprint key: %w", classify(err))
	}
	s.fpKey = key
	return key, nil
}

// fingerprint is the audit trail's and the API's name for a secret.
func (s *Store) fingerprint(ctx context.Context, v secret.String) (string, error) {
	key, err := s.FingerprintKey(ctx)
	if err != nil {
		return "", err
	}
	return secret.Fingerprint(key, v), nil
}

// inTx runs fn in one transaction, committed when fn returns nil and rolled back otherwise.
func (s *Store) inTx(ctx context.Context, fn func(pgx.Tx) error) error {
	return pgx.BeginTxFunc(ctx, s.pool, pgx.TxOptions{}, fn)
}

// SealingKeyIDs lists the encryption key ids that sealed stored secrets.
func SealingKeyIDs(ctx context.Context, pool *pgxpool.Pool) ([]string, error) {
	rows, err := pool.Query(ctx, `SELECT api_key_key_id FROM ai_provider_keys WHERE api_key_key_id IS NOT NULL
UNION SELECT api_key_key_id FROM user_ai_provider_keys WHERE api_key_key_id IS NOT NULL`)
	if err != nil {
		return nil, fmt.Errorf("list the encryption keys in use: %w", classify(err))
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("list the encryption keys in use: %w", classify(err))
	}
	return ids, nil
}
