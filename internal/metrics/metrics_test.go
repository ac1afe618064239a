package metrics

import (
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

func value(t *testing.T, c prometheus.Counter) float64 {
	t.Helper()
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}

// TestResolvedCountsEachSeries: the kept series count exactly what WithLabelValues would, under
// concurrent calls that add series while others read them.
func TestResolvedCountsEachSeries(t *testing.T) {
	m := New()
	type labels struct{ purpose, source, outcome string }
	series := []labels{
		{"PURPOSE_CHAT", "central", "OK"}, {"PURPOSE_CHAT", "user", "OK"}, {"PURPOSE_TITLE", "", "USER_KEY_REQUIRED"},
		{"PURPOSE_SUBAGENT", "central", "OK"}, {"PURPOSE_CHAT", "", "CHAT_NOT_FOUND"},
	}
	const perSeries = 200
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range perSeries * len(series) / 4 {
				l := series[(i+w)%len(series)]
				m.Resolved(l.purpose, l.source, l.outcome, l.outcome == "OK" && l.purpose == "PURPOSE_SUBAGENT", "MODEL_CONFIG_DISABLED")
			}
		}()
	}
	wg.Wait()
	for _, l := range series {
		if got := value(t, m.resolutions.WithLabelValues(l.purpose, l.source, l.outcome)); got != perSeries {
			t.Errorf("resolverd_resolutions_total%v = %v, want %d", l, got, perSeries)
		}
	}
	if got := value(t, m.fallbacks.WithLabelValues("MODEL_CONFIG_DISABLED")); got != perSeries {
		t.Errorf("resolverd_fallbacks_total = %v, want %d", got, perSeries)
	}
	ch := make(chan prometheus.Metric, 100)
	m.resolutions.Collect(ch)
	if got := len(ch); got != len(series) {
		t.Errorf("%d series of resolverd_resolutions_total, want %d", got, len(series))
	}
}

// BenchmarkResolved: counting one resolution.
func BenchmarkResolved(b *testing.B) {
	m := New()
	b.ReportAllocs()
	for b.Loop() {
		m.Resolved("PURPOSE_CHAT", "central", "OK", false, "")
	}
}
