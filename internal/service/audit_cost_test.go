package service

import (
	"context"
	"io"
	"log/slog"
	"runtime"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/resolverd/resolverd/internal/audit"
	"github.com/resolverd/resolverd/internal/db"
	"github.com/resolverd/resolverd/internal/rbac"
	"github.com/resolverd/resolverd/internal/resolve"
	"github.com/resolverd/resolverd/pkg/secret"
)

type discardSink struct{}

func (discardSink) InsertAuditEvents(context.Context, []db.AuditEvent) error { return nil }

// BenchmarkAuditCostPerResolution is what the audit trail adds to a resolution's latency: building
// its record and handing it to the writer (the write itself happens later, in batches). Run:
// go test -run '^$' -bench AuditCostPerResolution ./internal/service/
func BenchmarkAuditCostPerResolution(b *testing.B) {
	w := audit.NewWriter(discardSink{}, slog.New(slog.NewTextHandler(io.Discard, nil)), audit.Options{FlushInterval: time.Millisecond})
	w.Start()
	defer w.Close(context.Background())
	ctx := rbac.WithPrincipal(context.Background(), rbac.Principal{TokenID: uuid.New()})
	p := &resolve.Provider{ID: uuid.New()}
	res := &resolve.Result{Config: &resolve.ModelConfig{ID: uuid.New()}, Provider: p, RequestedConfigID: uuid.New(),
		Credential: resolve.Credential{Source: resolve.SourceCentral, KeyID: uuid.New(), Secret: secret.New("sk-bench")}}
	req := resolve.Request{ChatID: uuid.New(), Purpose: resolve.PurposeChat}
	cred := credentialProto(res.Credential, []byte("0123456789abcdef0123456789abcdef"))
	b.ReportAllocs()
	b.ResetTimer()
	cpu0 := processCPU(b)
	for range b.N {
		// Far faster than any server resolves, the loop can fill the buffer: it then waits for
		// the writer, as a server would refuse the call (audit.ErrFull), so that what is measured
		// includes the writer's own work per record.
		for w.Record(resolutionEvent(ctx, req, res, cred, nil)) != nil {
			runtime.Gosched()
		}
	}
	b.StopTimer()
	w.Close(context.Background())
	// Both sides: the handler's (the record, the hand-off) and the writer's (taking it, batching).
	b.ReportMetric(float64((processCPU(b)-cpu0).Nanoseconds())/float64(b.N), "cpu-ns/record")
}

func processCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
