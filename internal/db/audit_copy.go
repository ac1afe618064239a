package db

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/resolverd/resolverd/internal/auditchain"
)

// The audit trail takes a row per resolution, so its batches are encoded here, straight into
// PostgreSQL's binary COPY format (https://www.postgresql.org/docs/15/sql-copy.html, "Binary
// Format"), rather than through pgx.CopyFrom: that one boxes every value of every row into an
// interface (16 allocations a row) and asks the server to describe the table before each batch.
// The columns are few and their binary forms simple: uuid (16 bytes), text (UTF-8 bytes),
// boolean (1 byte), timestamptz (microseconds since 2000-01-01 UTC), jsonb (version 1, then text).

// auditColumns are the content columns (what a chain's MAC covers, in this order), the summary
// columns (covered too, for a summary only: see appendAuditContent), then the chain columns.
var auditColumns = []string{"occurred_at", "action", "token_id", "chat_id", "outcome",
	"purpose", "request_id", "requested_model_config_id", "model_config_id", "provider_id", "credential_source",
	"key_id", "fingerprint", "fallback", "fallback_reason", "details", "subject",
	"count", "first_at", "last_at",
	"chain_id", "chain_seq", "mac", "prev_mac", "mac_key_id"}

var auditCopySQL = "COPY audit_events (" + strings.Join(auditColumns, ", ") + ") FROM STDIN (FORMAT binary)"

var copyHeader = []byte("PGCOPY\n\xff\r\n\x00\x00\x00\x00\x00\x00\x00\x00\x00")

// postgresEpochMicros is timestamptz's zero, 2000-01-01 00:00:00 UTC, in Unix microseconds.
var postgresEpochMicros = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC).UnixMicro()

// appendAuditCopy appends the binary COPY stream of events (header, one tuple each, trailer),
// linking each event into chain, which the caller holds (nil: unchained). Within a chain an
// event's occurred_at never precedes the one before it (auditchain.Chain.Stamp).
func appendAuditCopy(b []byte, events []AuditEvent, chain *auditchain.Chain) []byte {
	b = append(b, copyHeader...)
	for i := range events {
		e := &events[i]
		b = binary.BigEndian.AppendUint16(b, uint16(len(auditColumns)))
		if e.Count == 0 {
			e.Count = 1
		}
		if chain == nil {
			b = appendAuditContent(b, e)
			if !e.Summary() {
				b = appendOneResolution(b)
			}
			b = appendNulls(b, 5)
			continue
		}
		e.OccurredAt = chain.Stamp(e.OccurredAt)
		at := len(b)
		b = appendAuditContent(b, e)
		l := chain.Next(b[at:])
		if !e.Summary() {
			b = appendOneResolution(b)
		}
		b = appendUUID(b, l.Chain)
		b = binary.BigEndian.AppendUint32(b, 8)
		b = binary.BigEndian.AppendUint64(b, uint64(l.Seq))
		b = appendBytes(b, l.MAC[:])
		if l.HasPrev {
			b = appendBytes(b, l.Prev[:])
		} else {
			b = appendNulls(b, 1)
		}
		b = appendText(b, l.KeyID)
	}
	return binary.BigEndian.AppendUint16(b, 0xffff) // trailer: a field count of -1
}

// appendAuditContent appends the content columns of e, each as COPY's binary format has it
// (length, then value; -1 for NULL), and, for a summary, its count, first_at and last_at. These
// bytes are also what a chain's MAC covers: the verifier reads a row back (scanStoredEvent) and
// rebuilds them here, so every choice of NULL and empty below must be one scanStoredEvent can tell
// apart. A record of one resolution leaves the summary columns out (its writer appends count 1
// and two NULLs after the MAC), so the records written before they existed still verify.
func appendAuditContent(b []byte, e *AuditEvent) []byte {
	b = appendTimestamptz(b, e.OccurredAt)
	b = appendText(b, e.Action)
	b = appendUUID(b, e.TokenID)
	b = appendUUID(b, e.ChatID)
	b = appendText(b, e.Outcome)
	r := e.Resolution
	if r == nil {
		r = &ResolutionDetails{}
		b = appendNulls(b, 3)
	} else {
		b = appendText(b, r.Purpose)
		b = appendText(b, r.RequestID)
		b = appendUUID(b, r.RequestedConfigID)
	}
	if r.Resolved {
		b = appendUUID(b, r.ConfigID)
		b = appendUUID(b, r.ProviderID)
		b = appendText(b, r.CredentialSource)
		b = appendUUID(b, r.KeyID)
		b = appendNullText(b, r.Fingerprint)
		b = appendBool(b, r.Fallback)
		b = appendNullText(b, r.FallbackReason)
	} else {
		b = appendNulls(b, 7)
	}
	if len(e.Details) > 0 || len(e.Changes) > 0 {
		at := len(b)
		b = append(b, 0, 0, 0, 0, 1) // length, then jsonb's format version
		b = appendDetails(b, e.Details, e.Changes)
		binary.BigEndian.PutUint32(b[at:], uint32(len(b)-at-4))
	} else {
		b = appendNulls(b, 1)
	}
	b = appendNullText(b, e.Subject)
	if !e.Summary() {
		return b
	}
	b = binary.BigEndian.AppendUint32(b, 4)
	b = binary.BigEndian.AppendUint32(b, uint32(e.Count))
	b = appendNullTimestamptz(b, e.FirstAt)
	return appendNullTimestamptz(b, e.LastAt)
}

// appendOneResolution appends the summary columns of a record of one resolution: count 1, no
// first_at or last_at.
func appendOneResolution(b []byte) []byte {
	b = binary.BigEndian.AppendUint32(b, 4)
	b = binary.BigEndian.AppendUint32(b, 1)
	return appendNulls(b, 2)
}

func appendNulls(b []byte, n int) []byte {
	for range n {
		b = append(b, 0xff, 0xff, 0xff, 0xff)
	}
	return b
}

// appendText writes s as text; every text column of a resolution record is set (possibly empty).
func appendText(b []byte, s string) []byte {
	b = binary.BigEndian.AppendUint32(b, uint32(len(s)))
	return append(b, s...)
}

// appendNullText writes s, or NULL when it is empty.
func appendNullText(b []byte, s string) []byte {
	if s == "" {
		return appendNulls(b, 1)
	}
	return appendText(b, s)
}

// appendUUID writes id, or NULL for uuid.Nil.
func appendUUID(b []byte, id uuid.UUID) []byte {
	if id == uuid.Nil {
		return appendNulls(b, 1)
	}
	b = binary.BigEndian.AppendUint32(b, 16)
	return append(b, id[:]...)
}

func appendBytes(b, v []byte) []byte {
	b = binary.BigEndian.AppendUint32(b, uint32(len(v)))
	return append(b, v...)
}

func appendBool(b []byte, v bool) []byte {
	b = binary.BigEndian.AppendUint32(b, 1)
	if v {
		return append(b, 1)
	}
	return append(b, 0)
}

// appendNullTimestamptz writes t, or NULL for the zero time.
func appendNullTimestamptz(b []byte, t time.Time) []byte {
	if t.IsZero() {
		return appendNulls(b, 1)
	}
	return appendTimestamptz(b, t)
}

func appendTimestamptz(b []byte, t time.Time) []byte {
	b = binary.BigEndian.AppendUint32(b, 8)
	return binary.BigEndian.AppendUint64(b, uint64(t.UnixMicro()-postgresEpochMicros))
}

// copyAuditEvents sends events in one COPY (one statement, so all or none), appended to the
// store's chain of batched records: held until the COPY is answered, advanced only when it
// committed.
func (s *Store) copyAuditEvents(ctx context.Context, events []AuditEvent) error {
	c, err := s.pool.Acquire(ctx)
	if err != nil {
		return err
	}
	defer c.Release()
	chain := s.batches
	if chain != nil {
		if err := chain.Begin(ctx); err != nil {
			return err
		}
	}
	err = copyAudit(ctx, c.Conn().PgConn(), chain, events)
	if chain != nil {
		if err != nil {
			chain.Abort()
		} else {
			chain.Commit()
		}
	}
	return err
}

// copyBuffers holds COPY encoding buffers between batches (a channel, not a sync.Pool, which the
// garbage collector empties more often than batches come); CopyFrom has read a buffer whole when
// it returns without an error.
var copyBuffers = make(chan []byte, 4)

// maxPooledCopyBuffer bounds the buffers kept: a batch of the writer's default 500 records takes
// about 200 KiB.
const maxPooledCopyBuffer = 1 << 20

// copyAudit sends events in one COPY on conn (in its transaction, if it is in one), linked into
// chain, which the caller holds.
func copyAudit(ctx context.Context, conn *pgconn.PgConn, chain *auditchain.Chain, events []AuditEvent) error {
	// The encoding buffer is reused from batch to batch: a fresh one was about 400 bytes per
	// record for the garbage collector (go test -bench ResolveModelWarm -memprofile).
	var buf []byte
	select {
	case buf = <-copyBuffers:
	default:
	}
	buf = appendAuditCopy(slices.Grow(buf[:0], 64+len(events)*400), events, chain)
	tag, err := conn.CopyFrom(ctx, bytes.NewReader(buf), auditCopySQL)
	if err != nil {
		// Some of CopyFrom's failures return before its reader has stopped reading buf.
		return err
	}
	if cap(buf) <= maxPooledCopyBuffer {
		select {
		case copyBuffers <- buf:
		default:
		}
	}
	if n := tag.RowsAffected(); n != int64(len(events)) {
		return fmt.Errorf("COPY took %d of %d rows", n, len(events))
	}
	return nil
}
