package db

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// The audit trail is partitioned by UTC day on occurred_at (migration 16, docs/CONTRACT.md §7.4):
// audit_events_pYYYYMMDD holds [YYYY-MM-DD, the next day); audit_events_default takes a record
// whose day has no partition, so no record is ever refused for it; audit_events_legacy, when there
// is one, holds the trail written before partitioning (every time before its upper bound). Serving
// replicas create the partitions ahead (EnsureAuditPartitions) and retention drops whole days
// (DropAuditPartitionsBefore): no row is deleted, no table rewritten.
//
// Both take, in this order, an advisory lock (replicas take turns; each finds what the one before
// it did), the parent's lock, then the default partition's, with a lock_timeout: a long reader (an
// audit verify) makes them give up and try again later rather than hold writers behind them. Only
// a move out of the default partition holds the parent exclusively for longer than a moment: for
// as long as the move takes (docs/OPERATIONS.md, "Locks").

// AuditPartitionsAhead is how many days after today the serving replicas keep partitions for.
const AuditPartitionsAhead = 7

// auditLockTimeout bounds each wait for a lock of the partition maintenance. While a DROP waits
// for the parent table, writers queue behind it (the audit writer buffers them meanwhile: 10,000
// records, 5 s at 2,000 resolutions a second). It is longer than PostgreSQL's deadlock_timeout
// (1 s by default), after which an autovacuum holding a partition we wait for is cancelled.
const auditLockTimeout = 2 * time.Second

// auditPartitionsLock is the advisory lock of partition maintenance ("resolver" in ASCII).
const auditPartitionsLock int64 = 0x7265736f6c766572

// auditDay is the length of a partition.
const auditDay = 24 * time.Hour

// AuditPartition is one partition of audit_events.
type AuditPartition struct {
	Name string
	// From and To bound its occurred_at, [From, To): From is zero for MINVALUE (the legacy
	// partition), To zero for MAXVALUE (never dropped). Both are zero for the default partition.
	From, To time.Time
	Default  bool
}

// covers reports whether p takes any time of the day [day, day+24h).
func (p AuditPartition) covers(day time.Time) bool {
	if p.Default {
		return false
	}
	end := day.Add(auditDay)
	return (p.From.IsZero() || p.From.Before(end)) && (p.To.IsZero() || p.To.After(day))
}

type queryer interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

// AuditPartitions lists audit_events' partitions by range (the default one last).
func (s *Store) AuditPartitions(ctx context.Context) ([]AuditPartition, error) {
	return auditPartitions(ctx, s.pool)
}

func auditPartitions(ctx context.Context, q queryer) ([]AuditPartition, error) {
	// The bounds as PostgreSQL prints them, e.g. FOR VALUES FROM ('2025-01-02 00:00:00+00') TO
	// (...): a timestamptz literal with its offset, so it reads back exactly whatever TimeZone is.
	rows, err := q.Query(ctx, `SELECT c.relname, b.expr = 'DEFAULT',
  (regexp_match(b.expr, 'FROM \(''([^'']+)''\)'))[1]::timestamptz,
  (regexp_match(b.expr, 'TO \(''([^'']+)''\)'))[1]::timestamptz
FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
CROSS JOIN LATERAL (SELECT pg_get_expr(c.relpartbound, c.oid) AS expr) b
WHERE i.inhparent = 'audit_events'::regclass`)
	if err != nil {
		return nil, fmt.Errorf("list the audit trail's partitions: %w", classify(err))
	}
	parts, err := collect(rows, func(row pgx.Row) (AuditPartition, error) {
		var p AuditPartition
		var from, to *time.Time
		err := row.Scan(&p.Name, &p.Default, &from, &to)
		if from != nil {
			p.From = from.UTC()
		}
		if to != nil {
			p.To = to.UTC()
		}
		return p, err
	})
	if err != nil {
		return nil, fmt.Errorf("list the audit trail's partitions: %w", classify(err))
	}
	slices.SortFunc(parts, func(a, b AuditPartition) int {
		switch {
		case a.Default != b.Default:
			if a.Default {
				return 1
			}
			return -1
		case a.To.Equal(b.To):
			return a.From.Compare(b.From)
		case a.To.IsZero():
			return 1
		case b.To.IsZero():
			return -1
		}
		return a.To.Compare(b.To)
	})
	return parts, nil
}

func defaultPartition(parts []AuditPartition) string {
	for _, p := range parts {
		if p.Default {
			return p.Name
		}
	}
	return ""
}

// AuditPartitionName is the name of the partition of day (a UTC midnight).
func AuditPartitionName(day time.Time) string {
	return "audit_events_p" + day.UTC().Format("20060102")
}

// EnsureAuditPartitions creates the partition of every day from now's (UTC) to ahead days after it
// that none covers yet, and one for every day that has records in the default partition (written
// when their day had none: a clock far off, a replica that could not create them), moving those
// records into it in the same transaction — PostgreSQL refuses a partition whose rows sit in the
// default one. It returns the partitions it created. Several replicas may call it at once: they
// take turns, and each creates only what is still missing.
func (s *Store) EnsureAuditPartitions(ctx context.Context, now time.Time, ahead int) ([]string, error) {
	parts, err := auditPartitions(ctx, s.pool)
	if err != nil {
		return nil, err
	}
	var days []time.Time
	today := now.UTC().Truncate(auditDay)
	for i := range ahead + 1 {
		days = append(days, today.AddDate(0, 0, i))
	}
	if def := defaultPartition(parts); def != "" {
		rows, err := s.pool.Query(ctx, `SELECT DISTINCT date_trunc('day', occurred_at, 'UTC') FROM `+pgx.Identifier{def}.Sanitize())
		if err != nil {
			return nil, fmt.Errorf("read the days in the default partition: %w", classify(err))
		}
		stray, err := pgx.CollectRows(rows, pgx.RowTo[time.Time])
		if err != nil {
			return nil, fmt.Errorf("read the days in the default partition: %w", classify(err))
		}
		for _, d := range stray {
			days = append(days, d.UTC())
		}
	}
	slices.SortFunc(days, time.Time.Compare)
	days = slices.CompactFunc(days, time.Time.Equal)
	var created []string
	for _, d := range days {
		if slices.ContainsFunc(parts, func(p AuditPartition) bool { return p.covers(d) }) {
			continue
		}
		name, err := s.createAuditPartition(ctx, d)
		if err != nil {
			return created, err
		}
		if name != "" {
			created = append(created, name)
		}
	}
	return created, nil
}

// createAuditPartition creates the partition of day, moving its records out of the default
// partition; "" when another replica made it first.
func (s *Store) createAuditPartition(ctx context.Context, day time.Time) (string, error) {
	name := AuditPartitionName(day)
	err := s.maintainAuditPartitions(ctx, func(tx pgx.Tx, parts []AuditPartition) error {
		if slices.ContainsFunc(parts, func(p AuditPartition) bool { return p.covers(day) }) {
			name = ""
			return nil
		}
		table := pgx.Identifier{name}.Sanitize()
		from, to := day, day.Add(auditDay)
		// The parent first, as every reader and writer takes it, then the default partition.
		if _, err := tx.Exec(ctx, `LOCK TABLE ONLY audit_events IN SHARE UPDATE EXCLUSIVE MODE`); err != nil {
			return err
		}
		def := defaultPartition(parts)
		var stray bool
		if def != "" {
			if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT FROM `+pgx.Identifier{def}.Sanitize()+
				` WHERE occurred_at >= $1 AND occurred_at < $2)`, from, to).Scan(&stray); err != nil {
				return err
			}
		}
		// A day with no records waiting needs only what ATTACH takes, which readers and writers
		// pass. Moving records out of the default partition needs the parent exclusively: a reader
		// that planned with the partitions before this one would otherwise miss the moved records
		// (they left the default partition it reads, for one it does not know), and an audit
		// verify running then would report them as deleted. The lock is raised to that only then
		// (no other maintenance holds the parent: the advisory lock orders them).
		if stray {
			if _, err := tx.Exec(ctx, `LOCK TABLE ONLY audit_events IN ACCESS EXCLUSIVE MODE`); err != nil {
				return err
			}
		}
		// Its indexes come with ATTACH, from the parent's.
		if _, err := tx.Exec(ctx, `CREATE TABLE `+table+` (LIKE audit_events INCLUDING DEFAULTS INCLUDING CONSTRAINTS)`); err != nil {
			return err
		}
		if stray {
			if err := moveFromDefault(ctx, tx, def, table, from, to); err != nil {
				return err
			}
		}
		// DDL takes no parameters: the bounds are times this function formatted.
		_, err := tx.Exec(ctx, fmt.Sprintf(`ALTER TABLE audit_events ATTACH PARTITION %s FOR VALUES FROM ('%s') TO ('%s')`,
			table, from.Format(time.RFC3339), to.Format(time.RFC3339)))
		return err
	})
	if err != nil {
		return "", fmt.Errorf("create the audit trail's partition %s: %w", name, err)
	}
	return name, nil
}

// moveFromDefault moves the records of [from, to) from the default partition def into table, in a
// transaction that holds the parent exclusively, holding def against writers meanwhile (ATTACH
// takes that lock anyway, to check def).
func moveFromDefault(ctx context.Context, tx pgx.Tx, def, table string, from, to time.Time) error {
	d := pgx.Identifier{def}.Sanitize()
	if _, err := tx.Exec(ctx, `LOCK TABLE `+d+` IN ACCESS EXCLUSIVE MODE`); err != nil {
		return err
	}
	rows, err := tx.Query(ctx, `SELECT quote_ident(attname) FROM pg_attribute
WHERE attrelid = 'audit_events'::regclass AND attnum > 0 AND NOT attisdropped ORDER BY attnum`)
	if err != nil {
		return err
	}
	cols, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return err
	}
	list := strings.Join(cols, ", ")
	if _, err := tx.Exec(ctx, `INSERT INTO `+table+` (`+list+`) SELECT `+list+` FROM `+d+
		` WHERE occurred_at >= $1 AND occurred_at < $2`, from, to); err != nil {
		return err
	}
	_, err = tx.Exec(ctx, `DELETE FROM `+d+` WHERE occurred_at >= $1 AND occurred_at < $2`, from, to)
	return err
}

// AuditExpiry is what DropAuditPartitionsBefore did.
type AuditExpiry struct {
	// Dropped are the partitions it dropped, oldest first.
	Dropped []string
	// Legacy is set when the partition of the trail written before partitioning remains and
	// reaches back past the cutoff: its expired rows are for DeleteAuditEventsBefore.
	Legacy bool
}

// DropAuditPartitionsBefore drops, oldest first, every partition whose range ends at or before
// cutoff — whole days, so a record is kept up to a day past its retention. It stops at the first it
// cannot drop, and refuses to drop a day while the default partition holds older records (they get
// their own partition first, from EnsureAuditPartitions): what it removes is always every record
// older than some time, which within each chain is a prefix, since a chain's occurred_at never
// decreases (docs/CONTRACT.md §7.4) — what remains verifies.
func (s *Store) DropAuditPartitionsBefore(ctx context.Context, cutoff time.Time) (AuditExpiry, error) {
	var exp AuditExpiry
	parts, err := auditPartitions(ctx, s.pool)
	if err != nil {
		return exp, err
	}
	def := defaultPartition(parts)
	for _, p := range parts {
		if p.Default || p.To.IsZero() {
			continue
		}
		if p.To.After(cutoff) {
			exp.Legacy = p.From.IsZero()
			break
		}
		err := s.maintainAuditPartitions(ctx, func(tx pgx.Tx, now []AuditPartition) error {
			if !slices.ContainsFunc(now, func(q AuditPartition) bool { return q.Name == p.Name }) {
				return nil // another replica dropped it
			}
			// The parent first, as every reader and writer takes it.
			if _, err := tx.Exec(ctx, `LOCK TABLE ONLY audit_events IN ACCESS EXCLUSIVE MODE`); err != nil {
				return err
			}
			if def != "" {
				var older bool
				if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT FROM `+pgx.Identifier{def}.Sanitize()+` WHERE occurred_at < $1)`, p.To).Scan(&older); err != nil {
					return err
				}
				if older {
					return fmt.Errorf("the default partition holds records older than %s: they need their own partition first",
						p.To.Format(time.RFC3339))
				}
			}
			_, err := tx.Exec(ctx, `DROP TABLE `+pgx.Identifier{p.Name}.Sanitize())
			return err
		})
		if err != nil {
			return exp, fmt.Errorf("drop the audit trail's partition %s: %w", p.Name, err)
		}
		exp.Dropped = append(exp.Dropped, p.Name)
	}
	return exp, nil
}

// maintainAuditPartitions runs fn in a transaction that holds the maintenance's advisory lock,
// with the partitions as they are once it holds it.
func (s *Store) maintainAuditPartitions(ctx context.Context, fn func(tx pgx.Tx, parts []AuditPartition) error) error {
	return classify(pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT set_config('lock_timeout', $1, true)`, fmt.Sprintf("%dms", auditLockTimeout.Milliseconds())); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, auditPartitionsLock); err != nil {
			return err
		}
		parts, err := auditPartitions(ctx, tx)
		if err != nil {
			return err
		}
		return fn(tx, parts)
	}))
}
