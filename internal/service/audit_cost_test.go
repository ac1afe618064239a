package service

import (
	"context"
	"io"
	"log/slog"
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
	for range b.N {
		if err := w.Record(resolutionEvent(ctx, req, res, cred, nil)); err != nil {
			b.Fatal(err)
		}
	}
}
