package db

import (
	"context"
	"database/sql"
	"fmt"
	"io/fs"
	"log/slog"
	"path/filepath"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"

	"github.com/resolverd/resolverd/migrations"
)

// Migrator applies the embedded goose migrations. Concurrent migrators (two replicas' migration
// jobs) serialise on a PostgreSQL advisory lock.
type Migrator struct {
	db       *sql.DB
	provider *goose.Provider
	pool     *pgxpool.Pool
}

// MigrationResult is one applied (or reverted) migration.
type MigrationResult = goose.MigrationResult

// MigrationStatus is one migration's state in the database.
type MigrationStatus = goose.MigrationStatus

// NewMigrator returns a migrator over pool. logger receives one line per migration; nil is quiet.
func NewMigrator(pool *pgxpool.Pool, logger *slog.Logger) (*Migrator, error) {
	return newMigrator(pool, migrations.FS, logger)
}

func newMigrator(pool *pgxpool.Pool, fsys fs.FS, logger *slog.Logger) (*Migrator, error) {
	locker, err := lock.NewPostgresSessionLocker()
	if err != nil {
		return nil, fmt.Errorf("create the migration lock: %w", err)
	}
	db := stdlib.OpenDBFromPool(pool)
	opts := []goose.ProviderOption{
		goose.WithSessionLocker(locker),
		goose.WithDisableGlobalRegistry(true),
		goose.WithGoMigrations(cutoverMigration()),
	}
	if logger != nil {
		opts = append(opts, goose.WithSlog(logger))
	}
	p, err := goose.NewProvider(goose.DialectPostgres, db, fsys, opts...)
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("load the migrations: %w", err)
	}
	return &Migrator{db: db, provider: p, pool: pool}, nil
}

// Close releases the migrator's handle (not the pool).
func (m *Migrator) Close() error { return m.db.Close() }

// LatestVersion is the newest migration version this binary carries.
func LatestVersion() int64 {
	latest := int64(CutoverVersion)
	entries, _ := fs.ReadDir(migrations.FS, ".")
	for _, e := range entries {
		if v, err := goose.NumericComponent(e.Name()); err == nil && v > latest {
			latest = v
		}
	}
	return latest
}

// SchemaVersion reads the newest migration version applied to the database (0 for an empty one)
// without writing anything: serve and the health check use it, and neither may create goose's table.
func SchemaVersion(ctx context.Context, pool *pgxpool.Pool) (int64, error) {
	var exists bool
	if err := pool.QueryRow(ctx, `SELECT to_regclass('goose_db_version') IS NOT NULL`).Scan(&exists); err != nil {
		return 0, fmt.Errorf("read the schema version: %w", classify(err))
	}
	if !exists {
		return 0, nil
	}
	var v int64
	if err := pool.QueryRow(ctx, `SELECT coalesce(max(version_id), 0) FROM goose_db_version`).Scan(&v); err != nil {
		return 0, fmt.Errorf("read the schema version: %w", classify(err))
	}
	return v, nil
}

// UpTo applies every pending migration up to version (0: all). When the run includes the legacy
// cutover it checks the cutover's preconditions first, so a conflict stops the run before any
// migration is applied and the database stays exactly as it was.
func (m *Migrator) UpTo(ctx context.Context, version int64) ([]*MigrationResult, error) {
	var (
		res []*MigrationResult
		err error
	)
	if version == 0 || version >= CutoverVersion {
		report, err := Preflight(ctx, m.pool)
		if err != nil {
			return nil, fmt.Errorf("migrate up: %w", err)
		}
		if len(report.Conflicts) > 0 {
			return nil, fmt.Errorf("migrate up: %w", &ConflictsError{Conflicts: report.Conflicts})
		}
	}
	if version == 0 {
		res, err = m.provider.Up(ctx)
	} else {
		res, err = m.provider.UpTo(ctx, version)
	}
	if err != nil {
		return res, fmt.Errorf("migrate up: %w", classify(err))
	}
	return res, nil
}

// BoundSecretsVersion is the migration from which stored secrets are sealed bound to their row
// (00010); going below it needs them re-sealed the older way first.
const BoundSecretsVersion = 10

// PartitionedAuditVersion is the migration that partitions the audit trail and adds summarised
// resolution records (00016); going below it needs every summary gone first.
const PartitionedAuditVersion = 16

// downRefusals are the conditions under which a migration's down step refuses (each repeats, in
// SQL, the check of its file's Down section), by version: a count query and the refusal's words.
var downRefusals = []struct {
	version int64
	count   string
	refuse  string
}{
	{PartitionedAuditVersion, `SELECT count(*) FROM audit_events WHERE count <> 1`,
		"%d audit record(s) summarise several resolutions (serve --audit-resolutions=summary), which older releases cannot hold; they leave with --audit-retention"},
	{14, `SELECT (SELECT count(*) FROM ai_provider_keys k WHERE k.api_key_key_id IN (SELECT id FROM data_encryption_keys))
     + (SELECT count(*) FROM user_ai_provider_keys k WHERE k.api_key_key_id IN (SELECT id FROM data_encryption_keys))`,
		"%d secret(s) are sealed by data-encryption keys that only this table holds; move them to --encryption-keys first (`resolverd keys rotate --encryption-keys NEW --from-kms-key-uri URI`), then migrate down again"},
	// The data keys also key the audit events written on a KMS key; the table holds their only copy.
	{14, `SELECT count(*) FROM audit_events WHERE mac_key_id IN (SELECT id FROM data_encryption_keys)`,
		"%d audit event(s) are keyed by data-encryption keys that only this table holds, and `resolverd audit verify` could no longer check them; they leave with --audit-retention (with retention off, only by deleting them)"},
	{BoundSecretsVersion, `SELECT (SELECT count(*) FROM ai_provider_keys WHERE api_key LIKE 'v2:%')
     + (SELECT count(*) FROM user_ai_provider_keys WHERE api_key LIKE 'v2:%')`,
		"%d key(s) are sealed bound to their row (format 2), which older releases cannot open; stop every replica, run `resolverd keys rotate --format 1`, then migrate down again"},
}

// DownTo reverts migrations until version is the newest applied one. What a down step on the way
// would refuse is checked first, so a refused down changes nothing (each step is its own
// transaction: without the check, the steps above the refusing one would already be undone).
func (m *Migrator) DownTo(ctx context.Context, version int64) ([]*MigrationResult, error) {
	current, err := m.provider.GetDBVersion(ctx)
	if err != nil {
		return nil, fmt.Errorf("migrate down to %d: %w", version, classify(err))
	}
	for _, r := range downRefusals {
		if version >= r.version || current < r.version {
			continue
		}
		var n int64
		if err := m.pool.QueryRow(ctx, r.count).Scan(&n); err != nil {
			return nil, fmt.Errorf("migrate down to %d: check what version %d's down step refuses: %w", version, r.version, classify(err))
		}
		if n > 0 {
			return nil, fmt.Errorf("migrate down to %d: cannot go below version %d: "+r.refuse+"; nothing was changed", version, r.version, n)
		}
	}
	res, err := m.provider.DownTo(ctx, version)
	if err != nil {
		return res, fmt.Errorf("migrate down to %d: %w", version, classify(err))
	}
	return res, nil
}

// Status lists every migration with its state.
func (m *Migrator) Status(ctx context.Context) ([]*MigrationStatus, error) {
	st, err := m.provider.Status(ctx)
	if err != nil {
		return nil, fmt.Errorf("read the migration status: %w", classify(err))
	}
	return st, nil
}

// ApplyVersion applies one migration by itself, without UpTo's pre-run checks: the migration's own
// guards still apply. It exists to prove those guards (a writer can race the pre-run checks).
func (m *Migrator) ApplyVersion(ctx context.Context, version int64) (*MigrationResult, error) {
	res, err := m.provider.ApplyVersion(ctx, version, true)
	if err != nil {
		return res, fmt.Errorf("apply migration %d: %w", version, classify(err))
	}
	return res, nil
}

// MigrationName names a migration for people: its file, or for the Go migration its purpose.
func MigrationName(version int64, path string) string {
	if version == CutoverVersion && (path == "" || path == ".") {
		return fmt.Sprintf("%05d_legacy_cutover (migrations/cutover/*.sql, run by internal/db/cutover.go)", version)
	}
	return filepath.Base(path)
}
