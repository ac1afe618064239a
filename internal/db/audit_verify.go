package db

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/resolverd/resolverd/internal/auditchain"
)

// WalkAuditTrail calls fn with every audit event that occurred at or after since (the zero time:
// every event), in id order, as auditchain.Verifier takes them: the record's content rebuilt in
// the encoding its writer MACed. It reads one consistent snapshot, streaming, so a trail of any
// size takes constant memory; fn must not keep the record's slices.
func WalkAuditTrail(ctx context.Context, pool *pgxpool.Pool, since time.Time, fn func(auditchain.Record) error) error {
	return pgx.BeginTxFunc(ctx, pool, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		var from *time.Time
		if !since.IsZero() {
			from = &since
		}
		rows, err := tx.Query(ctx, `SELECT `+auditSelect+` FROM audit_events
WHERE $1::timestamptz IS NULL OR occurred_at >= $1 ORDER BY id`, from)
		if err != nil {
			return fmt.Errorf("read the audit trail: %w", classify(err))
		}
		defer rows.Close()
		var buf []byte
		for rows.Next() {
			s, err := scanStoredEvent(rows)
			if err != nil {
				return fmt.Errorf("read the audit trail: %w", classify(err))
			}
			r := auditchain.Record{ID: s.ID, OccurredAt: s.OccurredAt, MAC: s.mac, Prev: s.prev}
			set := 0
			if s.chainID != nil {
				r.Chain, set = *s.chainID, set+1
			}
			if s.chainSeq != nil {
				r.Seq, set = *s.chainSeq, set+1
			}
			if s.macKeyID != nil {
				r.KeyID, set = *s.macKeyID, set+1
			}
			if s.mac != nil {
				set++
			}
			switch {
			case set == 0:
				r.Partial = s.prev != nil
			case set != 4, r.Chain == uuid.Nil:
				r.Partial = true
			}
			buf = appendAuditContent(buf[:0], &s.AuditEvent)
			if s.detailsErr != nil && set != 0 {
				// Rebuilt bytes would leave out what the details hold beyond resolverd's shape:
				// make sure they cannot match.
				buf = append(buf, "\x00odd details"...)
			}
			r.Content = buf
			if err := fn(r); err != nil {
				return err
			}
		}
		if err := rows.Err(); err != nil {
			return fmt.Errorf("read the audit trail: %w", classify(err))
		}
		return nil
	})
}

// EstimateAuditEvents is PostgreSQL's estimate of the audit trail's size (for progress), or -1
// when it has none yet: the sum over its partitions (a partitioned table has no estimate of its
// own), or the table's own before version 16.
func EstimateAuditEvents(ctx context.Context, pool *pgxpool.Pool) int64 {
	var n *float64
	if err := pool.QueryRow(ctx, `SELECT sum(reltuples) FILTER (WHERE reltuples >= 0) FROM pg_class
WHERE (oid = 'audit_events'::regclass AND relkind = 'r')
   OR oid IN (SELECT inhrelid FROM pg_inherits WHERE inhparent = 'audit_events'::regclass)`).Scan(&n); err != nil || n == nil {
		return -1
	}
	return int64(*n)
}
