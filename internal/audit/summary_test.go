package audit

import (
	"context"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/resolverd/resolverd/internal/db"
)

// resolution is a successful resolution of chat through key, at t.
func resolution(chat, key uuid.UUID, t time.Time, requestID string) db.AuditEvent {
	return db.AuditEvent{OccurredAt: t, Action: "ResolveModel", ChatID: chat, Outcome: db.OutcomeOK,
		Resolution: &db.ResolutionDetails{Purpose: "chat", RequestID: requestID, Resolved: true, ConfigID: uuid.UUID{1},
			ProviderID: uuid.UUID{2}, CredentialSource: "central", KeyID: key, Fingerprint: "fp"}}
}

func (s *sink) all() []db.AuditEvent {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []db.AuditEvent
	for _, b := range s.batches {
		out = append(out, b...)
	}
	return out
}

// TestSummaryModeFoldsIdenticalResolutions: in summary mode the identical successful resolutions
// of a window are one record with their count and first and last times, without a request id; a
// lone resolution keeps its own record and request id; failures, refusals and admin calls are
// never folded; the counts add up to the resolutions recorded.
func TestSummaryModeFoldsIdenticalResolutions(t *testing.T) {
	s := &sink{}
	w := NewWriter(s, quiet, Options{Capacity: 1000, BatchSize: 7, FlushInterval: time.Hour, Summarise: true, SummaryWindow: time.Hour})
	w.Start()
	chatA, chatB, key := uuid.New(), uuid.New(), uuid.New()
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	var records []db.AuditEvent
	for i := range 10 {
		records = append(records, resolution(chatA, key, t0.Add(time.Duration(i)*time.Second), "a"))
	}
	records = append(records, resolution(chatB, key, t0.Add(time.Minute), "lone"))
	other := resolution(chatA, uuid.New(), t0.Add(2*time.Second), "other-key") // another key: not identical
	records = append(records, other)
	fellBack := resolution(chatA, key, t0.Add(3*time.Second), "fell-back")
	fellBack.Resolution.Fallback, fellBack.Resolution.FallbackReason = true, "MODEL_CONFIG_DISABLED"
	records = append(records, fellBack)
	for range 3 { // a refusal: never folded
		records = append(records, db.AuditEvent{OccurredAt: t0, Action: "ResolveModel", ChatID: chatA, Outcome: "MISSING_SCOPE",
			Resolution: &db.ResolutionDetails{Purpose: "chat", RequestID: "refused"}})
	}
	for range 2 { // a failed admin call
		records = append(records, db.AuditEvent{OccurredAt: t0, Action: "CreateProvider", Outcome: "INVALID_ARGUMENT", Details: map[string]string{"request_id": "x"}})
	}
	for _, r := range records {
		if err := w.Record(r); err != nil {
			t.Fatal(err)
		}
	}
	w.Close(context.Background())

	got := s.all()
	var total int
	var summaries, refusals, admin, singles int
	for _, e := range got {
		total += max(e.Count, 1)
		switch {
		case e.Summary():
			summaries++
			if e.ChatID != chatA || e.Count != 10 || !e.FirstAt.Equal(t0) || !e.LastAt.Equal(t0.Add(9*time.Second)) ||
				!e.OccurredAt.Equal(t0) || e.Resolution.RequestID != "" || e.Resolution.KeyID != key {
				t.Errorf("summary: %+v %+v", e, e.Resolution)
			}
		case e.Outcome == "MISSING_SCOPE":
			refusals++
		case e.Action == "CreateProvider":
			admin++
		default:
			singles++
			if e.Resolution.RequestID == "" || e.Count > 1 {
				t.Errorf("a lone resolution lost its request id or got a count: %+v %+v", e, e.Resolution)
			}
		}
	}
	if total != len(records) || summaries != 1 || refusals != 3 || admin != 2 || singles != 3 {
		t.Fatalf("%d records stand for %d calls (want %d): %d summaries, %d refusals, %d admin, %d single resolutions",
			len(got), total, len(records), summaries, refusals, admin, singles)
	}
}

// TestSummaryWindowsAreWrittenAsTheyClose: a window's summaries are written when it closes, and
// a window that fills Capacity records is written at once.
func TestSummaryWindowsAreWrittenAsTheyClose(t *testing.T) {
	s := &sink{}
	w := NewWriter(s, quiet, Options{Capacity: 50, BatchSize: 10, FlushInterval: time.Hour, Summarise: true, SummaryWindow: 50 * time.Millisecond})
	chat, key := uuid.New(), uuid.New()
	// Taken before the writer starts, so that all five fall in its first window however slowly
	// this goroutine runs.
	for range 5 {
		if err := w.Record(resolution(chat, key, time.Now(), "r")); err != nil {
			t.Fatal(err)
		}
	}
	w.Start()
	defer w.Close(context.Background())
	deadline := time.Now().Add(5 * time.Second)
	for n, _ := s.written(); n == 0; n, _ = s.written() {
		if time.Now().After(deadline) {
			t.Fatal("the window's summary was not written")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if got := s.all(); len(got) != 1 || got[0].Count != 5 {
		t.Fatalf("wrote %+v, want one summary of 5", got)
	}

	// 50 different chats fill a (long) window: written without waiting for it to close. Records
	// wait in the buffer until a batch's worth is there or the flush tick (20 ms here), the
	// longest a record waits; the tick writes only unsummarised records, so what writes these
	// before the hour is up is the window reaching Capacity.
	deadline = time.Now().Add(5 * time.Second)
	s2 := &sink{}
	w2 := NewWriter(s2, quiet, Options{Capacity: 50, BatchSize: 10, FlushInterval: 20 * time.Millisecond, Summarise: true, SummaryWindow: time.Hour})
	w2.Start()
	defer w2.Close(context.Background())
	for range 50 {
		if err := w2.Record(resolution(uuid.New(), key, time.Now(), "r")); err != nil {
			t.Fatal(err)
		}
	}
	for n, _ := s2.written(); n < 50; n, _ = s2.written() {
		if time.Now().After(deadline) {
			t.Fatalf("a full window was not written: %d records", n)
		}
		time.Sleep(5 * time.Millisecond)
	}
	if _, batches := s2.written(); batches != 5 {
		t.Fatalf("a full window of 50 went in %d batches, want 5 of 10", batches)
	}
}

// TestEachModeNeverFolds: the default mode writes every resolution as its own record.
func TestEachModeNeverFolds(t *testing.T) {
	s := &sink{}
	w := NewWriter(s, quiet, Options{FlushInterval: time.Hour})
	w.Start()
	chat, key := uuid.New(), uuid.New()
	for range 20 {
		if err := w.Record(resolution(chat, key, time.Now(), "r")); err != nil {
			t.Fatal(err)
		}
	}
	w.Close(context.Background())
	for _, e := range s.all() {
		if e.Summary() {
			t.Fatalf("each mode wrote a summary: %+v", e)
		}
	}
	if n, _ := s.written(); n != 20 {
		t.Fatalf("%d records, want 20", n)
	}
}
