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
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/resolverd/resolverd/internal/auditchain"
	"github.com/resolverd/resolverd/pkg/secret"
)

// Sealer encrypts secrets for storage and decrypts them when read. keyID is the id of the
// encryption key that sealed a value; nil means plain text carried over from the legacy layout.
type Sealer interface {
	Seal(s secret.String) (ciphertext string, keyID string, err error)
	Open(ciphertext string, keyID *string) (secret.String, error)
}

// Store reads and writes resolverd's tables.
type Store struct {
	pool   *pgxpool.Pool
	sealer Sealer

	mu    sync.Mutex
	fpKey []byte // read once: it never changes

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

// seal encrypts v for a row written in tx, registering the sealing key in encryption_keys in the
// same transaction (the row references it). Admin writes are rare; the extra statement is cheaper
// than any cache that could outlive a rolled-back registration.
func (s *Store) seal(ctx context.Context, tx pgx.Tx, v secret.String) (ciphertext, keyID string, err error) {
	ciphertext, keyID, err = s.sealer.Seal(v)
	if err != nil {
		return "", "", fmt.Errorf("seal the key: %w", err)
	}
	if _, err := tx.Exec(ctx, `INSERT INTO encryption_keys (id) VALUES ($1) ON CONFLICT DO NOTHING`, keyID); err != nil {
		return "", "", fmt.Errorf("register encryption key %s: %w", keyID, classify(err))
	}
	return ciphertext, keyID, nil
}

// inTx runs fn in one transaction, committed when fn returns nil and rolled back otherwise.
func (s *Store) inTx(ctx context.Context, fn func(pgx.Tx) error) error {
	return pgx.BeginTxFunc(ctx, s.pool, pgx.TxOptions{}, fn)
}

// open decrypts a stored secret, naming the row on failure.
func (s *Store) open(table string, id fmt.Stringer, ciphertext string, keyID *string) (secret.String, error) {
	v, err := s.sealer.Open(ciphertext, keyID)
	if err != nil {
		return secret.String{}, fmt.Errorf("decrypt %s %s: %w", table, id, err)
	}
	return v, nil
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
