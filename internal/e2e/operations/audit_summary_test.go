package operations_test

import (
	"bufio"
	"context"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"

	"github.com/resolverd/resolverd/internal/audit"
	"github.com/resolverd/resolverd/internal/auditchain"
	"github.com/resolverd/resolverd/internal/db"
	"github.com/resolverd/resolverd/internal/metrics"
	"github.com/resolverd/resolverd/internal/pgtest"
	"github.com/resolverd/resolverd/internal/rbac"
	"github.com/resolverd/resolverd/internal/server"
	"github.com/resolverd/resolverd/internal/testenv"
	resolverv1 "github.com/resolverd/resolverd/proto/resolver/v1"
)

// resolutionsCounted is the sum of resolverd_resolutions_total over its labels.
func resolutionsCounted(t *testing.T, m *metrics.Metrics) int64 {
	t.Helper()
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	var n int64
	sc := bufio.NewScanner(rec.Body)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "resolverd_resolutions_total{") {
			continue
		}
		v, err := strconv.ParseFloat(line[strings.LastIndexByte(line, ' ')+1:], 64)
		if err != nil {
			t.Fatalf("metric line %q: %v", line, err)
		}
		n += int64(v)
	}
	return n
}

// TestSummaryModeCountsEveryResolution: docs/CONTRACT.md §7.4 — with --audit-resolutions=summary
// the identical successful resolutions of a window are one record whose count says how many; the
// counts of the trail add up exactly to the resolutions made (resolverd_resolutions_total);
// failed and refused resolutions are never summarised; the trail verifies.
func TestSummaryModeCountsEveryResolution(t *testing.T) {
	m := metrics.New()
	w := testenv.NewWorld(t, testenv.Options{Configure: func(c *server.Config) {
		c.Metrics = m
		c.Audit = audit.Options{Summarise: true, SummaryWindow: 300 * time.Millisecond}
	}})
	p := w.Provider("summarised", "openai", resolverv1.ByokPolicy_BYOK_POLICY_DISABLED)
	w.CentralKey(p.Id, "sk-summary-central")
	cfg := w.Config(p.Id, "gpt-summary", true)
	off := w.Config(p.Id, "gpt-summary-off", false)
	w.DisableConfig(off.Id)
	chats := []string{w.Chat(w.User("sum-a").Id, cfg.Id).Id, w.Chat(w.User("sum-b").Id, cfg.Id).Id}
	noProviders := w.Token(t, "sum-no-providers", rbac.ChatRead, rbac.ModelConfigRead, rbac.AIProviderKeyRead)

	var (
		wg    sync.WaitGroup
		calls int64
		mu    sync.Mutex
	)
	// Successful resolutions from several callers at once, across windows.
	resolve := func(n int, chat, config string, purpose resolverv1.Purpose) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range n {
				if _, err := w.Resolve(chat, config, purpose); err != nil {
					t.Errorf("resolve: %v", err)
				}
				mu.Lock()
				calls++
				mu.Unlock()
				time.Sleep(time.Millisecond)
			}
		}()
	}
	for _, chat := range chats {
		resolve(30, chat, "", resolverv1.Purpose_PURPOSE_CHAT)
		resolve(10, chat, off.Id, resolverv1.Purpose_PURPOSE_SUBAGENT) // a fallback, the same each time
	}
	// Identical failures and refusals.
	for range 6 {
		_, err := w.Resolve(chats[0], off.Id, resolverv1.Purpose_PURPOSE_TITLE)
		testenv.WantReason(t, err, codes.FailedPrecondition, "MODEL_CONFIG_DISABLED")
	}
	for range 4 {
		_, err := w.Resolver.ResolveModel(w.As(noProviders), &resolverv1.ResolveModelRequest{ChatId: chats[1], Purpose: resolverv1.Purpose_PURPOSE_CHAT})
		testenv.WantReason(t, err, codes.PermissionDenied, "MISSING_SCOPE")
	}
	wg.Wait()
	calls += 10
	if counted := resolutionsCounted(t, m); counted != calls {
		t.Fatalf("resolverd_resolutions_total counts %d, %d calls were made", counted, calls)
	}

	var (
		events []*resolverv1.AuditEvent
		sum    int64
	)
	for deadline := time.Now().Add(10 * time.Second); ; {
		events = auditEvents(t, w, &resolverv1.ListAuditEventsRequest{Action: "ResolveModel", Limit: 500}, 0)
		sum = 0
		for _, e := range events {
			sum += e.GetCount()
		}
		if sum >= calls || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if sum != calls {
		t.Fatalf("the trail's counts add up to %d, %d resolutions were made (%d records)", sum, calls, len(events))
	}
	var summaries, refusals, failures int
	for _, e := range events {
		first, last := e.GetFirstAt().AsTime(), e.GetLastAt().AsTime()
		switch {
		case e.GetOutcome() == "MISSING_SCOPE":
			refusals++
		case e.GetOutcome() != "OK":
			failures++
		case e.GetCount() > 1:
			summaries++
			if e.GetDetails()["request_id"] != "" || last.Before(first) {
				t.Errorf("summary %s: request id %q, first %s, last %s", e.GetId(), e.GetDetails()["request_id"], first, last)
			}
			continue
		}
		if e.GetCount() != 1 || !first.Equal(last) || !first.Equal(e.GetCreatedAt().AsTime()) {
			t.Errorf("record %s (%s) stands for %d calls from %s to %s", e.GetId(), e.GetOutcome(), e.GetCount(), first, last)
		}
	}
	if refusals != 4 || failures != 6 {
		t.Errorf("%d refusals and %d failures recorded one by one, want 4 and 6", refusals, failures)
	}
	if summaries == 0 || len(events) >= int(calls) {
		t.Errorf("%d records for %d resolutions, %d of them summaries: nothing was summarised", len(events), calls, summaries)
	}

	v := auditchain.NewVerifier(pgtest.Keyring)
	if err := db.WalkAuditTrail(context.Background(), w.Pool, time.Time{}, v.Add); err != nil {
		t.Fatalf("verify a trail with summaries: %v", err)
	}
}
