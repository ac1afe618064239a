// Package metrics exposes resolverd's Prometheus metrics: the gRPC server's own (from
// go-grpc-middleware's Prometheus provider) and the resolverd_ series — resolutions, fallbacks,
// cache, change listener, audit queue, database pool. Labels carry purposes, sources, outcomes and
// reasons only: never an id, never a secret.
package metrics

import (
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	grpcprom "github.com/grpc-ecosystem/go-grpc-middleware/providers/prometheus"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Metrics is one server's registry.
type Metrics struct {
	Registry *prometheus.Registry
	// GRPC provides the interceptors that count and time every RPC.
	GRPC *grpcprom.ServerMetrics

	resolutions *prometheus.CounterVec
	fallbacks   *prometheus.CounterVec
	panics      prometheus.Counter
	rateLimited prometheus.Counter
	unreadable  *prometheus.CounterVec
	unauth      *prometheus.CounterVec
	reports     *prometheus.CounterVec
	unavailable *unavailableKeys

	resolvedSeries atomic.Pointer[map[resolutionLabels]prometheus.Counter]
	seriesMu       sync.Mutex // serialises writers of resolvedSeries
}

// New builds a registry with the Go runtime and process collectors.
func New() *Metrics {
	r := prometheus.NewRegistry()
	m := &Metrics{
		Registry: r,
		GRPC: grpcprom.NewServerMetrics(grpcprom.WithServerHandlingTimeHistogram(
			grpcprom.WithHistogramBuckets([]float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5}))),
		resolutions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "resolverd_resolutions_total",
			Help: "ResolveModel calls by purpose, credential source (empty when the call failed) and outcome (OK or the error reason).",
		}, []string{"purpose", "credential_source", "outcome"}),
		fallbacks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "resolverd_fallbacks_total",
			Help: "Resolutions answered with another config than the requested one, by the reason the requested one was unusable.",
		}, []string{"reason"}),
		panics: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "resolverd_panics_total", Help: "Handler panics recovered (each answered INTERNAL).",
		}),
		rateLimited: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "resolverd_rate_limited_total", Help: "Calls refused because their token was over its request rate.",
		}),
		unreadable: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "resolverd_secrets_unreadable_total",
			Help: "Stored secrets found not to open in their place (moved, edited, or sealed by an unknown encryption key), once per read of the row, by table; each is logged at error level and never served.",
		}, []string{"table"}),
		unauth: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "resolverd_unauthenticated_calls_total",
			Help: "Calls refused because they carried no valid token, by method (counted, never written to the audit trail).",
		}, []string{"method"}),
		reports: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "resolverd_credential_reports_total",
			Help: "Reports of workers on the keys they were given (ReportCredentialOutcome) applied by this replica, by reported outcome: RATE_LIMITED, QUOTA_EXHAUSTED, UNAUTHORIZED or OK.",
		}, []string{"outcome"}),
		unavailable: &unavailableKeys{desc: prometheus.NewDesc("resolverd_keys_unavailable",
			"Enabled central keys of each live provider that are cooling down or suspended after workers' reports, by provider name (read every health check).",
			[]string{"provider_name"}, nil)},
	}
	for _, o := range []string{"RATE_LIMITED", "QUOTA_EXHAUSTED", "UNAUTHORIZED", "OK"} {
		m.reports.WithLabelValues(o)
	}
	m.resolvedSeries.Store(&map[resolutionLabels]prometheus.Counter{})
	// Both tables show from the start, so an alert on any increase needs no absent-series rule.
	for _, table := range []string{"ai_provider_keys", "user_ai_provider_keys"} {
		m.unreadable.WithLabelValues(table)
	}
	r.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		m.GRPC, m.resolutions, m.fallbacks, m.panics, m.rateLimited, m.unreadable, m.unauth, m.reports, m.unavailable)
	return m
}

// Reported counts a worker's report applied, by its outcome.
func (m *Metrics) Reported(outcome string) { m.reports.WithLabelValues(outcome).Inc() }

// KeysUnavailable replaces the resolverd_keys_unavailable gauge's values: per provider name, the
// enabled central keys cooling down or suspended (providers with none are shown as 0).
func (m *Metrics) KeysUnavailable(byProvider map[string]int) {
	m.unavailable.mu.Lock()
	defer m.unavailable.mu.Unlock()
	m.unavailable.counts = byProvider
}

// unavailableKeys exports the last counts it was given, whole: a provider that went away goes away
// from the gauge too.
type unavailableKeys struct {
	desc   *prometheus.Desc
	mu     sync.Mutex
	counts map[string]int
}

func (u *unavailableKeys) Describe(ch chan<- *prometheus.Desc) { ch <- u.desc }

func (u *unavailableKeys) Collect(ch chan<- prometheus.Metric) {
	u.mu.Lock()
	defer u.mu.Unlock()
	for name, n := range u.counts {
		ch <- prometheus.MustNewConstMetric(u.desc, prometheus.GaugeValue, float64(n), name)
	}
}

// SecretUnreadable counts a stored secret of table that did not open.
func (m *Metrics) SecretUnreadable(table string) { m.unreadable.WithLabelValues(table).Inc() }

// Resolved counts one ResolveModel call.
func (m *Metrics) Resolved(purpose, source, outcome string, fallback bool, fallbackReason string) {
	m.resolvedCounter(resolutionLabels{purpose, source, outcome}).Inc()
	if fallback {
		m.fallbacks.WithLabelValues(fallbackReason).Inc()
	}
}

// resolutionLabels is one series of resolverd_resolutions_total.
type resolutionLabels struct{ purpose, source, outcome string }

// resolvedCounter is the series of l. WithLabelValues hashes and checks the label values on every
// call; the series are few (purposes × sources × outcomes), so each is looked up there once and
// kept here.
func (m *Metrics) resolvedCounter(l resolutionLabels) prometheus.Counter {
	if c, ok := (*m.resolvedSeries.Load())[l]; ok {
		return c
	}
	m.seriesMu.Lock()
	defer m.seriesMu.Unlock()
	old := *m.resolvedSeries.Load()
	if c, ok := old[l]; ok {
		return c
	}
	// Copied on write: readers take no lock, and a new series is rare.
	next := make(map[resolutionLabels]prometheus.Counter, len(old)+1)
	for k, v := range old {
		next[k] = v
	}
	c := m.resolutions.WithLabelValues(l.purpose, l.source, l.outcome)
	next[l] = c
	m.resolvedSeries.Store(&next)
	return c
}

// Panicked counts a recovered panic.
func (m *Metrics) Panicked() { m.panics.Inc() }

// Limited counts a call refused by rate limiting (a token's rate, or its rate of reports).
func (m *Metrics) Limited() { m.rateLimited.Inc() }

// Unauthenticated counts a call refused for want of a valid token. method is the gRPC full method
// name, one of the server's registered methods (gRPC answers any other before the interceptors).
func (m *Metrics) Unauthenticated(method string) { m.unauth.WithLabelValues(method).Inc() }

// CacheStats is what the cache reports.
type CacheStats struct {
	Hits, Misses, Invalidations, Flushes, Reconnects uint64
	Live                                             bool
	// Token lookups that went to PostgreSQL (KnownTokenLookups of them for hashes known to have
	// been valid), those that found no active token, and calls answered "unknown" from memory.
	TokenLookups, KnownTokenLookups, TokensNotFound, TokenNegativeHits uint64
}

// WatchCache exports the cache's counters, read at scrape time.
func (m *Metrics) WatchCache(stats func() CacheStats) {
	counter := func(name, help string, get func(CacheStats) uint64) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help}, func() float64 { return float64(get(stats())) })
	}
	m.Registry.MustRegister(
		counter("resolverd_cache_hits_total", "Reads served from memory.", func(s CacheStats) uint64 { return s.Hits }),
		counter("resolverd_cache_misses_total", "Reads that went to PostgreSQL.", func(s CacheStats) uint64 { return s.Misses }),
		counter("resolverd_cache_invalidations_total", "Committed changes applied to the cache.", func(s CacheStats) uint64 { return s.Invalidations }),
		counter("resolverd_cache_flushes_total", "Times the whole cache was dropped (listener lost or reconnected, TRUNCATE).", func(s CacheStats) uint64 { return s.Flushes }),
		counter("resolverd_listener_reconnects_total", "Times the change listener connected again after losing its connection.", func(s CacheStats) uint64 { return s.Reconnects }),
		// By lane, never by token: the hash of a token is no label.
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "resolverd_token_lookups_total",
			Help: "Token lookups that went to PostgreSQL, by lane: known (hashes valid recently) or unseen (never seen valid).", ConstLabels: prometheus.Labels{"lane": "known"}},
			func() float64 { return float64(stats().KnownTokenLookups) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "resolverd_token_lookups_total",
			Help: "Token lookups that went to PostgreSQL, by lane: known (hashes valid recently) or unseen (never seen valid).", ConstLabels: prometheus.Labels{"lane": "unseen"}},
			func() float64 { s := stats(); return float64(s.TokenLookups - s.KnownTokenLookups) }),
		counter("resolverd_token_lookups_not_found_total", "Token lookups that found no active token (unknown, expired or revoked).", func(s CacheStats) uint64 { return s.TokensNotFound }),
		counter("resolverd_token_negative_hits_total", "Calls refused as unknown from memory: the same unknown token seen within the last seconds.", func(s CacheStats) uint64 { return s.TokenNegativeHits }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "resolverd_cache_live", Help: "1 while the change listener is connected and the cache serves from memory."},
			func() float64 {
				if stats().Live {
					return 1
				}
				return 0
			}),
	)
}

// WatchAudit exports the audit writer's queue depth and the records PostgreSQL refused.
func (m *Metrics) WatchAudit(depth func() int, rejected func() int64) {
	m.Registry.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "resolverd_audit_queue_depth", Help: "Resolution records waiting to be written to the audit trail.",
	}, func() float64 { return float64(depth()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "resolverd_audit_records_rejected_total",
			Help: "Resolution records PostgreSQL refused for their content; each is logged at error level instead.",
		}, func() float64 { return float64(rejected()) }))
}

// WatchTLS exports when the gRPC listener's certificate expires (it is reloaded on renewal), so an
// alert can fire before it does.
func (m *Metrics) WatchTLS(notAfter func() (time.Time, bool)) {
	m.Registry.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "resolverd_tls_certificate_not_after_seconds",
		Help: "Unix time at which the certificate the gRPC listener serves expires.",
	}, func() float64 {
		t, ok := notAfter()
		if !ok {
			return 0
		}
		return float64(t.Unix())
	}))
}

// WatchPool exports the database pool's state.
func (m *Metrics) WatchPool(pool *pgxpool.Pool) {
	gauge := func(name, help string, get func(*pgxpool.Stat) float64) prometheus.Collector {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, func() float64 { return get(pool.Stat()) })
	}
	counter := func(name, help string, get func(*pgxpool.Stat) float64) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help}, func() float64 { return get(pool.Stat()) })
	}
	m.Registry.MustRegister(
		gauge("resolverd_db_pool_connections", "Open connections in the pool.", func(s *pgxpool.Stat) float64 { return float64(s.TotalConns()) }),
		gauge("resolverd_db_pool_acquired_connections", "Connections in use.", func(s *pgxpool.Stat) float64 { return float64(s.AcquiredConns()) }),
		gauge("resolverd_db_pool_idle_connections", "Idle connections.", func(s *pgxpool.Stat) float64 { return float64(s.IdleConns()) }),
		gauge("resolverd_db_pool_max_connections", "The pool's size limit.", func(s *pgxpool.Stat) float64 { return float64(s.MaxConns()) }),
		counter("resolverd_db_pool_acquires_total", "Connections acquired from the pool.", func(s *pgxpool.Stat) float64 { return float64(s.AcquireCount()) }),
		counter("resolverd_db_pool_empty_acquires_total", "Acquires that had to wait for a connection.", func(s *pgxpool.Stat) float64 { return float64(s.EmptyAcquireCount()) }),
		counter("resolverd_db_pool_canceled_acquires_total", "Acquires cancelled before a connection came.", func(s *pgxpool.Stat) float64 { return float64(s.CanceledAcquireCount()) }),
		counter("resolverd_db_pool_acquire_seconds_total", "Time spent acquiring connections.", func(s *pgxpool.Stat) float64 { return s.AcquireDuration().Seconds() }),
	)
}

// Handler serves the registry in the Prometheus text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.Registry, promhttp.HandlerOpts{Registry: m.Registry})
}
