package audit

import (
	"context"
	"errors"
	"io"
	"log/slog"
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
