// Package audit writes records to the audit trail in batches — resolutions, and admin calls that
// failed (which have no transaction of their own to be written in): handlers hand a record to
// Record, which never waits on the database; a background loop writes what has gathered in one
// statement per batch, which the store links into its chain (internal/auditchain). If the database
// cannot take records and the bounded buffer fills, Record refuses, and the call fails with
// DATABASE_UNAVAILABLE rather than go unrecorded.
//
// Loss window: records still in the buffer when the process dies without a shutdown (SIGKILL, a
// crash, the machine going down) are lost — at most FlushInterval's worth of resolutions when the
// database is healthy (SummaryWindow's in summary mode), at most Capacity records when it is not.
// A graceful shutdown (SIGTERM) flushes the buffer before exit.
//
// In summary mode (Options.Summarise) the successful resolutions of a SummaryWindow that are
// identical but for their time and request id are written as one record with their count
// (summary.go); every other record is written one by one, as in the default mode.
package audit

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/resolverd/resolverd/internal/db"
	"github.com/resolverd/resolverd/internal/dbauthz"
	"github.com/resolverd/resolverd/internal/errs"
)

// Sink stores a batch of events in one transaction: the scope-checked store, which the writer
// calls as dbauthz.SystemAuditWriter.
type Sink interface {
	InsertAuditEvents(ctx context.Context, events []db.AuditEvent) error
}

// Options size the writer.
type Options struct {
	// Capacity bounds the records waiting to be written (default 10,000).
	Capacity int
	// BatchSize is the most records one write takes (default 500).
	BatchSize int
	// FlushInterval is the longest a record waits for its batch to fill (default 100ms).
	FlushInterval time.Duration
	// RetryBackoff is the first wait after a failed write, doubling up to 5s (default 100ms).
	RetryBackoff time.Duration
	// Summarise turns summary mode on (serve --audit-resolutions=summary).
	Summarise bool
	// SummaryWindow is how long summary mode gathers identical resolutions into one record
	// (default 10s). A window is written sooner when it holds Capacity records.
	SummaryWindow time.Duration
}

func (o *Options) defaults() {
	if o.Capacity <= 0 {
		o.Capacity = 10_000
	}
	if o.BatchSize <= 0 {
		o.BatchSize = 500
	}
	if o.FlushInterval <= 0 {
		o.FlushInterval = 100 * time.Millisecond
	}
	if o.RetryBackoff <= 0 {
		o.RetryBackoff = 100 * time.Millisecond
	}
	if o.SummaryWindow <= 0 {
		o.SummaryWindow = 10 * time.Second
	}
}

// Writer batches records into the audit trail.
type Writer struct {
	sink Sink
	log  *slog.Logger
	opts Options

	ch      chan db.AuditEvent
	full    chan struct{} // a batch's worth waits in ch (capacity 1)
	stop    chan struct{}
	done    chan struct{}
	mu      sync.RWMutex // guards closed against Record racing Close
	closed  bool
	closing context.Context // Close's context: how long the final flush may take
	dropped func(n int)     // called with the records a shutdown could not write (tests)

	rejected atomic.Int64
	// partial is how many records the loop holds in its unwritten batch: with those waiting in
	// ch, a batch's worth may already be there.
	partial atomic.Int64
}

// NewWriter returns a writer; Start begins writing.
func NewWriter(sink Sink, log *slog.Logger, opts Options) *Writer {
	opts.defaults()
	return &Writer{sink: sink, log: log, opts: opts, ch: make(chan db.AuditEvent, opts.Capacity),
		full: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{})}
}

// ErrFull is Record's refusal when records cannot be written fast enough (or at all).
var ErrFull = errs.New(errs.DatabaseUnavailable, "the audit trail cannot record this call right now; try again")

// Record queues an event without waiting. It fails with ErrFull (DATABASE_UNAVAILABLE) when the
// buffer is full or the writer is shut down: callers must not answer a call that was not recorded.
func (w *Writer) Record(e db.AuditEvent) error {
	w.mu.RLock()
	defer w.mu.RUnlock()
	if w.closed {
		return ErrFull
	}
	select {
	case w.ch <- e:
	default:
		return ErrFull
	}
	// The loop sleeps until a batch's worth waits or FlushInterval passes: waking it for every
	// record cost a goroutine switch, often a futex wake-up, per resolution.
	if len(w.ch)+int(w.partial.Load()) >= w.opts.BatchSize {
		select {
		case w.full <- struct{}{}:
		default: // already told
		}
	}
	return nil
}

// Room reports whether Record would take a record now. A call that must not change anything it
// cannot record (a worker's report, docs/CONTRACT.md §17) asks before it makes the change.
func (w *Writer) Room() bool {
	w.mu.RLock()
	defer w.mu.RUnlock()
	return !w.closed && len(w.ch) < cap(w.ch)
}

// Rejected is the number of records PostgreSQL refused for their content (see write): logged,
// not in the audit trail.
func (w *Writer) Rejected() int64 { return w.rejected.Load() }

// recordAttrs is a record for the log, every field of it.
func recordAttrs(e db.AuditEvent) slog.Value {
	attrs := []slog.Attr{slog.Time("occurred_at", e.OccurredAt), slog.String("action", e.Action),
		slog.String("token_id", e.TokenID.String()), slog.String("chat_id", e.ChatID.String()), slog.String("outcome", e.Outcome)}
	if r := e.Resolution; r != nil {
		attrs = append(attrs, slog.String("purpose", r.Purpose), slog.String("request_id", r.RequestID),
			slog.String("requested_model_config_id", r.RequestedConfigID.String()))
		if r.Resolved {
			attrs = append(attrs, slog.String("model_config_id", r.ConfigID.String()), slog.String("provider_id", r.ProviderID.String()),
				slog.String("credential_source", r.CredentialSource), slog.String("key_id", r.KeyID.String()),
				slog.String("fingerprint", r.Fingerprint), slog.Bool("fallback", r.Fallback), slog.String("fallback_reason", r.FallbackReason))
		}
	}
	if e.Summary() {
		attrs = append(attrs, slog.Int("count", e.Count), slog.Time("first_at", e.FirstAt), slog.Time("last_at", e.LastAt))
	}
	for k, v := range e.Details {
		attrs = append(attrs, slog.String("details."+k, v))
	}
	return slog.GroupValue(attrs...)
}

// Depth is the number of records waiting to be written.
func (w *Writer) Depth() int { return len(w.ch) }

// Start runs the write loop until Close.
func (w *Writer) Start() { go w.loop() }

// Close stops taking records and writes what is buffered, giving up when ctx ends (the records
// not written are logged as lost).
func (w *Writer) Close(ctx context.Context) {
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return
	}
	w.closed = true
	w.closing = ctx
	w.mu.Unlock()
	close(w.stop)
	<-w.done
}

func (w *Writer) loop() {
	defer close(w.done)
	batch := make([]db.AuditEvent, 0, w.opts.BatchSize)
	tick := time.NewTicker(w.opts.FlushInterval)
	defer tick.Stop()
	var (
		sum    *summaries
		window <-chan time.Time
	)
	if w.opts.Summarise {
		sum = newSummaries()
		t := time.NewTicker(w.opts.SummaryWindow)
		defer t.Stop()
		window = t.C
	}
	for {
		var ok bool
		select {
		case <-w.full: // full batches now, the rest at the tick
			batch, ok = w.pull(batch, sum)
		case <-tick.C:
			if batch, ok = w.pull(batch, sum); ok && len(batch) > 0 {
				if n := w.write(batch, w.stop); n < len(batch) {
					batch, ok = batch[n:], false
				} else {
					batch = batch[:0]
					w.partial.Store(0)
				}
			}
		case <-window:
			if batch, ok = w.pull(batch, sum); ok {
				if rest := w.writeAll(sum.take(), w.stop); len(rest) > 0 {
					batch, ok = append(batch, rest...), false
				}
			}
		case <-w.stop:
		}
		if !ok {
			w.drain(batch, sum)
			return
		}
	}
}

// pull takes the records waiting in the buffer when it is called, without waiting for more:
// summarisable ones (in summary mode) into sum, writing the window early when it holds Capacity
// distinct ones, the others into batch, writing each batch that fills. It returns the records
// taken but not written, and false when stop closed during a write (the caller drains).
//
// Full batches are written at once: it takes again while what it holds and what waits make a
// batch's worth, after telling Record (partial) how many it holds — a record sent before that
// was seen by this check, one sent after it sees the count and signals.
func (w *Writer) pull(batch []db.AuditEvent, sum *summaries) ([]db.AuditEvent, bool) {
	for round := 1; ; round++ {
		for range len(w.ch) {
			e := <-w.ch // only the loop takes from ch: what len saw is there
			if sum != nil && summarisable(&e) {
				if sum.add(e) >= w.opts.Capacity {
					if rest := w.writeAll(sum.take(), w.stop); len(rest) > 0 {
						return append(batch, rest...), false
					}
				}
				continue
			}
			batch = append(batch, e)
			if len(batch) == w.opts.BatchSize {
				if n := w.write(batch, w.stop); n < len(batch) {
					return batch[n:], false
				}
				batch = batch[:0]
			}
		}
		w.partial.Store(int64(len(batch)))
		if len(batch)+len(w.ch) < w.opts.BatchSize {
			return batch, true
		}
		if round == 4 {
			// Under a flood, let the loop see its window, tick and stop; it comes straight back.
			select {
			case w.full <- struct{}{}:
			default:
			}
			return batch, true
		}
	}
}

// writeAll writes records in batches, and returns those it could not write because stop closed.
func (w *Writer) writeAll(records []db.AuditEvent, stop <-chan struct{}) []db.AuditEvent {
	for len(records) > 0 {
		n := min(len(records), w.opts.BatchSize)
		if k := w.write(records[:n], stop); k < n {
			return records[k:]
		}
		records = records[n:]
	}
	return nil
}

// write stores batch, retrying with backoff, and returns how many of its records, from the start,
// it dealt with: all of them, unless stop closed first.
//
// A batch PostgreSQL refuses for what it holds (a value no column can take: retrying cannot help)
// would otherwise be retried forever while the buffer fills and every resolution fails. It is
// split instead, until each refused record is alone; a refused record is logged whole at error
// level (records hold ids and fingerprints, never a secret) and counted, and the rest are written.
func (w *Writer) write(batch []db.AuditEvent, stop <-chan struct{}) int {
	backoff := w.opts.RetryBackoff
	for {
		ctx, cancel := context.WithTimeout(dbauthz.AsSystemRestricted(context.Background(), dbauthz.SystemAuditWriter), 10*time.Second)
		err := w.sink.InsertAuditEvents(ctx, batch)
		cancel()
		if err == nil {
			return len(batch)
		}
		if errs.ReasonOf(err) == errs.InvalidArgument {
			if len(batch) == 1 {
				w.rejected.Add(1)
				w.log.Error("audit: PostgreSQL refuses this record, so it is logged here instead of the audit trail",
					"record", recordAttrs(batch[0]), "error", err)
				return 1
			}
			mid := len(batch) / 2
			if n := w.write(batch[:mid], stop); n < mid {
				return n
			}
			return mid + w.write(batch[mid:], stop)
		}
		w.log.Error("audit: writing a batch failed; retrying (resolutions fail once the buffer is full)",
			"records", len(batch), "buffered", len(w.ch), "retry_in", backoff.String(), "error", err)
		select {
		case <-stop:
			return 0
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}

// drain writes batch, the window's summaries and everything still buffered, in batches, until
// Close's context ends: the process is shutting down.
func (w *Writer) drain(batch []db.AuditEvent, sum *summaries) {
	for {
	fill:
		for len(batch) < w.opts.BatchSize {
			select {
			case e := <-w.ch:
				if sum != nil && summarisable(&e) {
					sum.add(e)
					continue
				}
				batch = append(batch, e)
			default:
				break fill
			}
		}
		if len(batch) == 0 {
			if sum.len() == 0 {
				return
			}
			batch = sum.take()
		}
		rest := w.writeAll(batch, w.closing.Done())
		if len(rest) > 0 {
			lost := len(rest) + len(w.ch) + sum.len()
			w.log.Error("audit: shutting down with records that could not be written", "lost", lost)
			if w.dropped != nil {
				w.dropped(lost)
			}
			return
		}
		batch = batch[:0]
	}
}
