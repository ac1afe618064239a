package audit

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/resolverd/resolverd/internal/db"
	"github.com/resolverd/resolverd/internal/errs"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// sink records batches; while failing is set it refuses them.
type sink struct {
	mu      sync.Mutex
	batches [][]db.AuditEvent
	failing atomic.Bool
}

func (s *sink) InsertAuditEvents(_ context.Context, events []db.AuditEvent) error {
	if s.failing.Load() {
		return errors.New("database down")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.batches = append(s.batches, append([]db.AuditEvent(nil), events...))
	return nil
}

func (s *sink) written() (records, batches int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, b := range s.batches {
		records += len(b)
	}
	return records, len(s.batches)
}

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

func event(i int) db.AuditEvent {
	return db.AuditEvent{OccurredAt: time.Now(), Action: "ResolveModel", Outcome: db.OutcomeOK, Details: map[string]string{"i": string(rune('a' + i%26))}}
}

func TestBatchesAndFlushesOnClose(t *testing.T) {
	s := &sink{}
	w := NewWriter(s, quiet, Options{Capacity: 10_000, BatchSize: 100, FlushInterval: time.Hour})
	w.Start()
	for i := range 1050 {
		if err := w.Record(event(i)); err != nil {
			t.Fatal(err)
		}
	}
	// Ten full batches go without waiting for the (hour-long) flush interval.
	deadline := time.Now().Add(5 * time.Second)
	for n, _ := s.written(); n < 1000; n, _ = s.written() {
		if time.Now().After(deadline) {
			t.Fatalf("only %d records written without a flush tick", n)
		}
		time.Sleep(5 * time.Millisecond)
	}
	w.Close(context.Background())
	records, batches := s.written()
	if records != 1050 || batches != 11 {
		t.Fatalf("%d records in %d batches, want 1050 in 11", records, batches)
	}
	if err := w.Record(event(0)); !errs.Is(err, errs.DatabaseUnavailable) {
		t.Fatalf("Record after Close: %v", err)
	}
}

func TestFlushIntervalBoundsTheWait(t *testing.T) {
	s := &sink{}
	w := NewWriter(s, quiet, Options{BatchSize: 500, FlushInterval: 20 * time.Millisecond})
	w.Start()
	defer w.Close(context.Background())
	if err := w.Record(event(0)); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for n, _ := s.written(); n < 1; n, _ = s.written() {
		if time.Now().After(deadline) {
			t.Fatal("a lone record was not written after the flush interval")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestABatchsWorthIsWrittenAtOnceCountingTheLoopsPartialBatch: the loop wakes when a batch's
// worth waits, counting the records it already holds in its unwritten batch: 5 held and 5 new
// make a batch, written at once, not at the (hour-long) flush tick.
func TestABatchsWorthIsWrittenAtOnceCountingTheLoopsPartialBatch(t *testing.T) {
	s := &sink{}
	w := NewWriter(s, quiet, Options{BatchSize: 10, FlushInterval: time.Hour})
	for i := range 15 { // taken by the loop's first wake: a batch written, 5 held
		if err := w.Record(event(i)); err != nil {
			t.Fatal(err)
		}
	}
	w.Start()
	defer w.Close(context.Background())
	wait := func(want int) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for n, _ := s.written(); n < want; n, _ = s.written() {
			if time.Now().After(deadline) {
				t.Fatalf("%d records written, want %d without a flush tick", n, want)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	wait(10)
	for i := range 5 {
		if err := w.Record(event(15 + i)); err != nil {
			t.Fatal(err)
		}
	}
	wait(20)
}

// TestFailsClosedAndRecovers: while the database refuses records, the buffer fills and Record
// refuses with DATABASE_UNAVAILABLE; nothing buffered is lost once the database returns.
func TestFailsClosedAndRecovers(t *testing.T) {
	s := &sink{}
	s.failing.Store(true)
	w := NewWriter(s, quiet, Options{Capacity: 50, BatchSize: 10, FlushInterval: time.Millisecond, RetryBackoff: time.Millisecond})
	w.Start()
	accepted := 0
	var refused error
	for i := 0; i < 1000 && refused == nil; i++ {
		if err := w.Record(event(i)); err != nil {
			refused = err
		} else {
			accepted++
		}
	}
	if !errs.Is(refused, errs.DatabaseUnavailable) {
		t.Fatalf("a full buffer must refuse with DATABASE_UNAVAILABLE, got %v after %d", refused, accepted)
	}
	if accepted > 50+10 {
		t.Fatalf("accepted %d records with a buffer of 50 and batches of 10", accepted)
	}
	s.failing.Store(false)
	w.Close(context.Background())
	if records, _ := s.written(); records != accepted {
		t.Fatalf("%d records written after recovery, want every accepted one (%d)", records, accepted)
	}
}

func TestShutdownReportsWhatItCouldNotWrite(t *testing.T) {
	s := &sink{}
	s.failing.Store(true)
	w := NewWriter(s, quiet, Options{Capacity: 100, BatchSize: 10, FlushInterval: time.Millisecond, RetryBackoff: time.Millisecond})
	var lost int
	w.dropped = func(n int) { lost = n }
	w.Start()
	for i := range 30 {
		if err := w.Record(event(i)); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	w.Close(ctx)
	if lost != 30 {
		t.Fatalf("lost %d, want all 30 reported", lost)
	}
}

// pickySink refuses, as PostgreSQL does a value no column can take, every batch holding a record
// whose outcome is "poison"; while down is set it refuses batches holding a record whose chat id's
// first byte is odd, as an unavailable database would. It keeps every record it took.
type pickySink struct {
	mu    sync.Mutex
	taken []db.AuditEvent
	calls int
	down  atomic.Bool
}

func (s *pickySink) InsertAuditEvents(_ context.Context, events []db.AuditEvent) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls++
	for _, e := range events {
		if e.Outcome == "poison" {
			return errs.Wrap(errors.New("ERROR: invalid byte sequence (SQLSTATE 22021)"), errs.InvalidArgument, "a value breaks the constraint")
		}
		if s.down.Load() && e.ChatID[0]%2 == 1 {
			return errs.Wrap(errors.New("connection refused"), errs.DatabaseUnavailable, "the database is unavailable")
		}
	}
	s.taken = append(s.taken, events...)
	return nil
}

func numbered(i int) db.AuditEvent {
	e := event(i)
	e.ChatID[14], e.ChatID[15] = byte(i>>8), byte(i)
	return e
}

func number(e db.AuditEvent) int { return int(e.ChatID[14])<<8 | int(e.ChatID[15]) }

// TestARefusedRecordDoesNotStallTheTrail: a record PostgreSQL will never take is split out of its
// batch, logged whole and counted; every other record is written exactly once, and the writer goes
// on taking records.
func TestARefusedRecordDoesNotStallTheTrail(t *testing.T) {
	s := &pickySink{}
	var logged safeBuffer
	w := NewWriter(s, slog.New(slog.NewJSONHandler(&logged, nil)), Options{BatchSize: 100, FlushInterval: time.Hour, RetryBackoff: time.Millisecond})
	w.Start()
	poison := map[int]bool{7: true, 8: true, 150: true, 299: true}
	for i := range 300 {
		e := numbered(i)
		if poison[i] {
			e.Outcome = "poison"
		}
		if err := w.Record(e); err != nil {
			t.Fatal(err)
		}
	}
	w.Close(context.Background())

	seen := map[int]int{}
	for _, e := range s.taken {
		seen[number(e)]++
	}
	for i := range 300 {
		if want := map[bool]int{true: 0, false: 1}[poison[i]]; seen[i] != want {
			t.Errorf("record %d written %d times, want %d", i, seen[i], want)
		}
	}
	if w.Rejected() != int64(len(poison)) {
		t.Errorf("Rejected() = %d, want %d", w.Rejected(), len(poison))
	}
	out := logged.String()
	if n := strings.Count(out, "PostgreSQL refuses this record"); n != len(poison) {
		t.Errorf("%d refused records logged, want %d:\n%s", n, len(poison), out)
	}
	if !strings.Contains(out, numbered(150).ChatID.String()) || !strings.Contains(out, `"outcome":"poison"`) {
		t.Errorf("the log does not hold the refused record itself:\n%s", out)
	}
	// Splitting costs a few statements per refused record, not one per record.
	if s.calls > 60 {
		t.Errorf("%d statements for 300 records with 4 refused", s.calls)
	}
}

// TestShutdownDuringASplitWritesNothingTwice: the database goes down while a batch with a refused
// record is being split; at shutdown the records already written are not counted as lost or
// written again.
func TestShutdownDuringASplitWritesNothingTwice(t *testing.T) {
	s := &pickySink{}
	s.down.Store(true)
	w := NewWriter(s, quiet, Options{BatchSize: 64, FlushInterval: time.Hour, RetryBackoff: time.Millisecond})
	var lost int
	w.dropped = func(n int) { lost = n }
	w.Start()
	// Records 0-31 have even chat ids (the "down" sink takes them), 32-63 odd ones; 5 is refused.
	for i := range 64 {
		e := numbered(i)
		e.ChatID[0] = byte(i / 32)
		if i == 5 {
			e.Outcome = "poison"
		}
		if err := w.Record(e); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(50 * time.Millisecond) // the first half is written; the second is being retried
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	w.Close(ctx)
	seen := map[int]int{}
	for _, e := range s.taken {
		seen[number(e)]++
	}
	for i := range 64 {
		want := 0
		if i < 32 && i != 5 {
			want = 1
		}
		if seen[i] != want {
			t.Errorf("record %d written %d times, want %d", i, seen[i], want)
		}
	}
	if lost != 32 {
		t.Errorf("lost %d, want the 32 the database never took", lost)
	}
}

type safeBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (b *safeBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *safeBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}
