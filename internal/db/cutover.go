package db

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"

	"github.com/resolverd/resolverd/migrations"
)

// CutoverVersion is the migration that moves the legacy tables into the AI-provider layout. It is
// a Go migration so that its preconditions are the very queries `resolverd migrate preflight` runs;
// its SQL lives in migrations/cutover/.
const CutoverVersion = 4

// Conflict is one row that stops the cutover.
type Conflict struct {
	Kind   string
	Detail string
}

// ConflictsError is the cutover's refusal: it names every offending row and wrote nothing.
type ConflictsError struct{ Conflicts []Conflict }

// maxListed bounds the conflicts an error message names; preflight lists them all.
const maxListed = 20

func (e *ConflictsError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "the legacy cutover found %d conflict(s) and changed nothing: ", len(e.Conflicts))
	for i, c := range e.Conflicts {
		if i == maxListed {
			fmt.Fprintf(&b, "; and %d more (run `resolverd migrate preflight` for the full list)", len(e.Conflicts)-maxListed)
			break
		}
		if i > 0 {
			b.WriteString("; ")
		}
		b.WriteString(c.Detail)
	}
	return b.String()
}

func cutoverMigration() *goose.Migration {
	return goose.NewGoMigration(CutoverVersion,
		&goose.GoFunc{RunTx: func(ctx context.Context, tx *sql.Tx) error {
			// Writers still on the legacy layout wait until the move commits, so the checks and the
			// move see the same rows.
			if _, err := tx.ExecContext(ctx, `LOCK TABLE chat_providers, user_chat_provider_keys, chat_model_configs IN SHARE ROW EXCLUSIVE MODE`); err != nil {
				return fmt.Errorf("lock the legacy tables: %w", err)
			}
			conflicts, err := cutoverConflicts(ctx, tx, true)
			if err != nil {
				return err
			}
			if len(conflicts) > 0 {
				return &ConflictsError{Conflicts: conflicts}
			}
			return execFile(ctx, tx, "cutover/up.sql")
		}},
		&goose.GoFunc{RunTx: func(ctx context.Context, tx *sql.Tx) error {
			return execFile(ctx, tx, "cutover/down.sql")
		}},
	)
}

type sqlQuerier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
}

func execFile(ctx context.Context, q sqlQuerier, name string) error {
	body, err := migrations.FS.ReadFile(name)
	if err != nil {
		return fmt.Errorf("read %s: %w", name, err)
	}
	if _, err := q.ExecContext(ctx, string(body)); err != nil {
		return fmt.Errorf("run %s: %w", name, err)
	}
	return nil
}

// cutoverConflicts runs the checks of migrations/cutover/conflicts_*.sql.
func cutoverConflicts(ctx context.Context, q sqlQuerier, withAIProviders bool) ([]Conflict, error) {
	files := []string{"cutover/conflicts_legacy.sql"}
	if withAIProviders {
		files = append(files, "cutover/conflicts_ai_providers.sql")
	}
	var out []Conflict
	for _, name := range files {
		body, err := migrations.FS.ReadFile(name)
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", name, err)
		}
		rows, err := q.QueryContext(ctx, string(body)+" ORDER BY 1, 2")
		if err != nil {
			return nil, fmt.Errorf("check the cutover's preconditions (%s): %w", name, classify(err))
		}
		for rows.Next() {
			var c Conflict
			if err := rows.Scan(&c.Kind, &c.Detail); err != nil {
				rows.Close()
				return nil, fmt.Errorf("check the cutover's preconditions: %w", classify(err))
			}
			out = append(out, c)
		}
		if err := rows.Close(); err != nil {
			return nil, err
		}
		if err := rows.Err(); err != nil {
			return nil, fmt.Errorf("check the cutover's preconditions: %w", classify(err))
		}
	}
	return out, nil
}

// PreflightReport is what `resolverd migrate preflight` found.
type PreflightReport struct {
	// Pending is false when there is nothing to move: no legacy tables (a fresh database, or the
	// cutover already ran). Note then says why.
	Pending   bool
	Note      string
	Conflicts []Conflict
}

// Preflight runs the cutover's checks read-only, whatever the database's version (a legacy
// deployment at version 1 has no ai_providers yet).
func Preflight(ctx context.Context, pool *pgxpool.Pool) (PreflightReport, error) {
	var legacy, aiProviders bool
	err := pool.QueryRow(ctx, `SELECT to_regclass('chat_providers') IS NOT NULL, to_regclass('ai_providers') IS NOT NULL`).Scan(&legacy, &aiProviders)
	if err != nil {
		return PreflightReport{}, fmt.Errorf("look for the legacy tables: %w", classify(err))
	}
	if !legacy {
		v, err := SchemaVersion(ctx, pool)
		if err != nil {
			return PreflightReport{}, err
		}
		if v >= CutoverVersion {
			return PreflightReport{Note: fmt.Sprintf("nothing to check: the cutover (version %d) is already applied", CutoverVersion)}, nil
		}
		return PreflightReport{Note: "nothing to check: the database has no legacy tables (run `resolverd migrate up` on a new database)"}, nil
	}
	db := stdlib.OpenDBFromPool(pool)
	defer db.Close()
	tx, err := db.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return PreflightReport{}, fmt.Errorf("begin a read-only transaction: %w", classify(err))
	}
	defer tx.Rollback() //nolint:errcheck // read-only; nothing to keep
	conflicts, err := cutoverConflicts(ctx, tx, aiProviders)
	if err != nil {
		return PreflightReport{}, err
	}
	return PreflightReport{Pending: true, Conflicts: conflicts}, nil
}

// IsConflicts reports whether err is the cutover's refusal.
func IsConflicts(err error) bool {
	var c *ConflictsError
	return errors.As(err, &c)
}
