package db

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"
)

// The audit trail takes a row per resolution, so its batches are encoded here, straight into
// PostgreSQL's binary COPY format (https://www.postgresql.org/docs/15/sql-copy.html, "Binary
// Format"), rather than through pgx.CopyFrom: that one boxes every value of every row into an
// interface (16 allocations a row) and asks the server to describe the table before each batch.
// The columns are few and their binary forms simple: uuid (16 bytes), text (UTF-8 bytes),
// boolean (1 byte), timestamptz (microseconds since 2000-01-01 UTC), jsonb (version 1, then text).

var auditCopySQL = "COPY audit_events (" + strings.Join(auditColumns, ", ") + ") FROM STDIN (FORMAT binary)"

var copyHeader = []byte("PGCOPY\n\xff\r\n\x00\x00\x00\x00\x00\x00\x00\x00\x00")

// postgresEpochMicros is timestamptz's zero, 2000-01-01 00:00:00 UTC, in Unix microseconds.
var postgresEpochMicros = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC).UnixMicro()

// appendAuditCopy appends the binary COPY stream of events (header, one tuple each, trailer).
func appendAuditCopy(b []byte, events []AuditEvent) []byte {
	b = append(b, copyHeader...)
	for i := range events {
		e := &events[i]
		b = binary.BigEndian.AppendUint16(b, uint16(len(auditColumns)))
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
		if len(e.Details) > 0 {
			at := len(b)
			b = append(b, 0, 0, 0, 0, 1) // length, then jsonb's format version
			b = appendDetails(b, e.Details)
			binary.BigEndian.PutUint32(b[at:], uint32(len(b)-at-4))
		} else {
			b = appendNulls(b, 1)
		}
		b = appendNullText(b, e.Subject)
	}
	return binary.BigEndian.AppendUint16(b, 0xffff) // trailer: a field count of -1
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

func appendBool(b []byte, v bool) []byte {
	b = binary.BigEndian.AppendUint32(b, 1)
	if v {
		return append(b, 1)
	}
	return append(b, 0)
}

func appendTimestamptz(b []byte, t time.Time) []byte {
	b = binary.BigEndian.AppendUint32(b, 8)
	return binary.BigEndian.AppendUint64(b, uint64(t.UnixMicro()-postgresEpochMicros))
}

// copyAuditEvents sends events in one COPY (one statement, so all or none).
func (s *Store) copyAuditEvents(ctx context.Context, events []AuditEvent) error {
	buf := appendAuditCopy(make([]byte, 0, 64+len(events)*320), events)
	c, err := s.pool.Acquire(ctx)
	if err != nil {
		return err
	}
	defer c.Release()
	tag, err := c.Conn().PgConn().CopyFrom(ctx, bytes.NewReader(buf), auditCopySQL)
	if err != nil {
		return err
	}
	if n := tag.RowsAffected(); n != int64(len(events)) {
		return fmt.Errorf("COPY took %d of %d rows", n, len(events))
	}
	return nil
}
