package db_test

import (
	"context"
	"fmt"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/resolverd/resolverd/internal/db"
	"github.com/resolverd/resolverd/internal/pgtest"
)

// processCPU is the CPU time this process has used, user and system.
func processCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkAuditInsert measures the audit trail's write throughput: batches of 500 resolution
// records, each batch one COPY (one transaction). Run:
// go test -run '^$' -bench AuditInsert -benchtime 200x ./internal/db/
func BenchmarkAuditInsert(b *testing.B) {
	ctx := context.Background()
	store := db.New(pgtest.NewPool(b), pgtest.Keyring)
	const batch = 500
	// One worker token (a fleet shares it), a different chat per record (the worst case for the
	// chat index).
	token := uuid.New()
	events := make([]db.AuditEvent, batch)
	for i := range events {
		events[i] = db.AuditEvent{OccurredAt: time.Now(), Action: "ResolveModel", TokenID: token, ChatID: uuid.New(), Outcome: db.OutcomeOK,
			Resolution: &db.ResolutionDetails{Purpose: "chat", RequestID: fmt.Sprintf("0123456789ab-%d", i), RequestedConfigID: uuid.New(),
				Resolved: true, ConfigID: uuid.New(), ProviderID: uuid.New(), CredentialSource: "central", KeyID: uuid.New(),
				Fingerprint: fmt.Sprintf("%016x", i)}}
	}
	b.ResetTimer()
	start, cpu0 := time.Now(), processCPU(b)
	for range b.N {
		if err := store.InsertAuditEvents(ctx, events); err != nil {
			b.Fatal(err)
		}
	}
	records := float64(b.N * batch)
	b.ReportMetric(records/time.Since(start).Seconds(), "records/s")
	// What the writer costs resolverd itself (PostgreSQL's share is in the other process).
	b.ReportMetric(float64((processCPU(b)-cpu0).Nanoseconds())/records, "go-cpu-ns/record")
}
