// Package server wires resolverd's gRPC server: the store behind its scope checks, the handlers,
// the interceptor chain, health and reflection. serve, dev and the tests all build it here, so the
// tests exercise exactly what is deployed.
package server

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"runtime"
	"sync"
	"time"

	grpcprom "github.com/grpc-ecosystem/go-grpc-middleware/providers/prometheus"
	"github.com/jackc/pgx/v5/pgxpool"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/reflection"
	"google.golang.org/grpc/stats"

	"github.com/resolverd/resolverd/internal/audit"
	"github.com/resolverd/resolverd/internal/cachedstore"
	"github.com/resolverd/resolverd/internal/db"
	"github.com/resolverd/resolverd/internal/dbauthz"
	"github.com/resolverd/resolverd/internal/egress"
	"github.com/resolverd/resolverd/internal/errs"
	"github.com/resolverd/resolverd/internal/identity"
	"github.com/resolverd/resolverd/internal/metrics"
	"github.com/resolverd/resolverd/internal/resolve"
	"github.com/resolverd/resolverd/internal/service"
	"github.com/resolverd/resolverd/internal/tlsconfig"
	"github.com/resolverd/resolverd/internal/transport"
	resolverv1 "github.com/resolverd/resolverd/proto/resolver/v1"
)

// Config is what a server is built from.
type Config struct {
	AllowBYOK  bool
	Reflection bool
	Logger     *slog.Logger
	// AllowedProviderHosts is --allowed-provider-hosts: where a provider's base_url may point
	// (docs/CONTRACT.md §7.5). nil allows every host.
	AllowedProviderHosts *egress.AllowList
	// HealthInterval is how often the database and schema are checked for the health service.
	HealthInterval time.Duration
	// AuditRetention is how long audit events are kept (whole days: a day's partition is dropped
	// once all of it is older); 0 keeps them forever.
	AuditRetention time.Duration
	// Audit sizes the resolution audit writer.
	Audit audit.Options
	// Cache bounds the cache; Listener tunes how fast a broken change listener is noticed.
	Cache    cachedstore.Options
	Listener db.ListenerOptions
	// CallTimeout bounds every authenticated call's work (see transport.ChainOptions).
	CallTimeout time.Duration
	// RateLimit is each token's request rate (zero: none).
	RateLimit transport.RateLimit
	// TLS, when set, is the gRPC listener's TLS configuration (client certificates included).
	TLS *tls.Config
	// Metrics, when set, receives the server's metrics.
	Metrics *metrics.Metrics
	// StatsHandler, when set, observes RPCs (otelgrpc's tracing handler).
	StatsHandler stats.Handler
	// JWT, when set, accepts JWTs of that issuer and audience as workload identities
	// (docs/CONTRACT.md §3.1). Client certificates identify callers whenever TLS verifies them.
	JWT *identity.JWTOptions
}

// MaxMessageBytes bounds a request: the largest legitimate one (a 10 KiB key, 64 KiB of options)
// is far smaller.
const MaxMessageBytes = 1 << 20

// MaxHeaderBytes bounds a request's metadata, as HTTP/2 counts it (SETTINGS_MAX_HEADER_LIST_SIZE:
// every field's name and value plus 32 bytes, pseudo-headers included). The largest legitimate
// metadata (a bearer token, a request id, trace context) is well under 1 KiB; grpc-go's default is
// 16 MiB, all read and held before the authenticator runs. The limit is announced in the
// connection's settings, so a grpc-go client refuses to send more (INTERNAL, "header list size to
// send violates the maximum size (16384 bytes) set by server"); the server resets a stream whose
// metadata goes over, and closes the connection of a client that sends far more
// (docs/CONTRACT.md §15).
const MaxHeaderBytes = 16 << 10

// HealthMaxHeaderBytes bounds the metadata of the health-only listener: probes send a few hundred
// bytes.
const HealthMaxHeaderBytes = 8 << 10

// KeepaliveMinTime is the shortest interval between client keepalive pings resolverd accepts.
const KeepaliveMinTime = 10 * time.Second

// MaxStreamsPerConnection bounds the calls one connection may have open at once; a worker process
// multiplexing its calls over one connection stays far below it.
const MaxStreamsPerConnection = 1024

// StreamWorkers is how many goroutines serve calls, reused call after call (calls beyond them
// start a goroutine each). An idle worker costs a parked goroutine whose stack the garbage
// collector shrinks.
const StreamWorkers = 64

// Server is a built gRPC server, ready to Serve.
type Server struct {
	GRPC *grpc.Server
	// HealthOnly serves grpc.health.v1 alone, without TLS, for probes that cannot speak TLS
	// (Kubernetes' native gRPC probes): see ServeHealth.
	HealthOnly *grpc.Server
	health     *health.Server
	pool       *pgxpool.Pool
	log        *slog.Logger
	every      time.Duration

	audit     *audit.Writer
	store     *dbauthz.Store
	cached    *cachedstore.Store
	listener  *db.Listener
	retention time.Duration
	metrics   *metrics.Metrics

	stopMonitor context.CancelFunc
	monitorDone chan struct{}
	stopJWT     context.CancelFunc // ends the JWT keys' loading and refreshing
	stopOnce    sync.Once
}

// New builds the server over pool. sealer opens and seals secrets.
func New(ctx context.Context, pool *pgxpool.Pool, sealer db.Sealer, cfg Config) (*Server, error) {
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	if cfg.HealthInterval <= 0 {
		cfg.HealthInterval = 2 * time.Second
	}
	store := db.New(pool, sealer)
	store.OnUnreadableSecret(func(ctx context.Context, u db.UnreadableSecret) {
		// The row, never the value (docs/CONTRACT.md §7.1).
		log.ErrorContext(ctx, "a stored secret does not open in its place; it is not served",
			"reason", "SECRET_UNREADABLE", "request_id", transport.RequestID(ctx), "table", u.Table, "row_id", u.RowID.String(),
			"encryption_key_id", u.EncryptionKeyID, "error", u.Err.Error())
		if cfg.Metrics != nil {
			cfg.Metrics.SecretUnreadable(u.Table)
		}
	})
	if !store.Chained() {
		// A server writes the audit trail, and every record it writes is chained (docs/CONTRACT.md §7.4).
		return nil, errors.New("the sealer does not derive keys, so the audit trail could not be chained")
	}
	cached := cachedstore.New(store, cfg.Cache)
	listener := db.NewListener(pool, cached, log, cfg.Listener)
	// Everything below reads and writes through the scope checks: callers with their tokens' scopes,
	// resolverd's own components as the system actors of dbauthz.
	authz := dbauthz.New(cached)
	fpKey, err := authz.FingerprintKey(dbauthz.AsSystemRestricted(ctx, dbauthz.SystemStartup))
	if err != nil {
		return nil, err
	}
	auditWriter := audit.NewWriter(authz, log, cfg.Audit)
	var (
		resolutions service.Observer
		calls       transport.Observer
		grpcMetrics *grpcprom.ServerMetrics
	)
	if m := cfg.Metrics; m != nil {
		resolutions, calls, grpcMetrics = m, m, m.GRPC
		m.WatchCache(func() metrics.CacheStats {
			st := cached.Stats()
			return metrics.CacheStats{Hits: st.Hits, Misses: st.Misses, Invalidations: st.Invalidations,
				Flushes: st.Flushes, Reconnects: st.Reconnects, Live: st.Live,
				TokenLookups: st.TokenLookups, KnownTokenLookups: st.KnownTokenLookups,
				TokensNotFound: st.TokensNotFound, TokenNegativeHits: st.TokenNegativeHits}
		})
		m.WatchAudit(auditWriter.Depth, auditWriter.Rejected)
		m.WatchPool(pool)
		if tlsCfg := cfg.TLS; tlsCfg != nil {
			m.WatchTLS(func() (time.Time, bool) { return tlsconfig.NotAfter(tlsCfg) })
		}
	}
	// Round robin among a provider's central keys counts turns per replica (docs/CONTRACT.md §2.2).
	ropts := resolve.Options{AllowBYOK: cfg.AllowBYOK, AllowedHosts: cfg.AllowedProviderHosts, Turn: resolve.NewTurns().Next}
	resolver := service.NewResolver(authz, ropts, fpKey, auditWriter, log, resolutions)
	admin := service.NewAdmin(authz, fpKey, auditWriter, log).AllowProviderHosts(cfg.AllowedProviderHosts)
	auth := transport.NewAuthenticator(authz, log, cfg.RateLimit, calls)
	// What the authenticator refuses: with a known token, recorded in the audit trail; without one,
	// only counted (docs/CONTRACT.md §7.4).
	auth.ReportRefusals(func(ctx context.Context, method string, req any, err error) {
		if r := errs.ReasonOf(err); r == errs.Unauthenticated || r == errs.UnknownIdentity {
			if cfg.Metrics != nil {
				cfg.Metrics.Unauthenticated(method)
			}
			return
		}
		resolver.RecordRefusal(ctx, method, req, err)
		admin.RecordRefusal(ctx, method, req, err)
	})
	ids := transport.Identities{Lookup: authz, ClientCertificates: cfg.TLS != nil && cfg.TLS.ClientAuth >= tls.VerifyClientCertIfGiven}
	jctx, stopJWT := context.WithCancel(context.WithoutCancel(ctx))
	if cfg.JWT != nil {
		o := *cfg.JWT
		if o.Log == nil {
			o.Log = log
		}
		if ids.JWT, err = identity.NewJWTVerifier(jctx, o); err != nil {
			stopJWT()
			return nil, err
		}
	}
	auth.UseIdentities(ids)
	unary, stream := transport.Interceptors(transport.ChainOptions{
		Log: log, Auth: auth, Metrics: grpcMetrics, Observer: calls, CallTimeout: cfg.CallTimeout,
	})
	// Innermost, after authentication: the admin calls that fail in their handler are recorded.
	unary = append(unary, admin.RecordFailures)
	opts := []grpc.ServerOption{
		grpc.ChainUnaryInterceptor(unary...),
		grpc.ChainStreamInterceptor(stream...),
		grpc.MaxRecvMsgSize(MaxMessageBytes),
		grpc.MaxHeaderListSize(MaxHeaderBytes),
		// grpc-go's default is no limit: one connection could open streams without end.
		grpc.MaxConcurrentStreams(MaxStreamsPerConnection),
		// Reused workers keep their grown stacks: a fresh goroutine per call spends a visible share
		// of a warm resolution growing its stack through the interceptor chain (runtime.newstack).
		// A worker stays taken while its call waits to run, so there must be as many as calls in
		// flight, not as CPUs: with 8, at 32 calls in flight two calls in three ran on a fresh
		// goroutine and ≈7% of the server's CPU went to growing stacks (make bench -profile).
		grpc.NumStreamWorkers(uint32(max(StreamWorkers, 4*runtime.GOMAXPROCS(0)))),
		// Clients keep connections for long; closing them now and then makes them resolve the
		// headless Service again and spread over replicas added since.
		grpc.KeepaliveParams(keepalive.ServerParameters{MaxConnectionAge: 5 * time.Minute, MaxConnectionAgeGrace: 30 * time.Second}),
		// Clients may keep idle connections alive with pings every 10 s or more; grpc-go's default
		// (5 minutes) closes the connection of a client that pings every 30 s, failing its calls.
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: KeepaliveMinTime, PermitWithoutStream: true}),
	}
	if cfg.TLS != nil {
		opts = append(opts, grpc.Creds(credentials.NewTLS(cfg.TLS)))
	}
	if cfg.StatsHandler != nil {
		opts = append(opts, grpc.StatsHandler(cfg.StatsHandler))
	}
	g := grpc.NewServer(opts...)
	resolverv1.RegisterResolverServiceServer(g, resolver)
	resolverv1.RegisterAdminServiceServer(g, admin)
	hs := health.NewServer()
	healthpb.RegisterHealthServer(g, hs)
	if cfg.Reflection {
		reflection.Register(g)
	}
	if grpcMetrics != nil {
		grpcMetrics.InitializeMetrics(g)
	}
	// Probes make one call at a time; nothing here needs large messages or many streams.
	healthOnly := grpc.NewServer(grpc.MaxRecvMsgSize(4<<10), grpc.MaxHeaderListSize(HealthMaxHeaderBytes), grpc.MaxConcurrentStreams(16))
	healthpb.RegisterHealthServer(healthOnly, hs)
	s := &Server{GRPC: g, HealthOnly: healthOnly, health: hs, pool: pool, log: log, every: cfg.HealthInterval,
		audit: auditWriter, store: authz, cached: cached, listener: listener, retention: cfg.AuditRetention, stopJWT: stopJWT,
		metrics: cfg.Metrics}
	auditWriter.Start()
	hs.SetServingStatus(LivenessService, healthpb.HealthCheckResponse_SERVING)
	s.checkHealth(ctx)
	mctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	s.stopMonitor, s.monitorDone = cancel, make(chan struct{})
	listening := make(chan struct{})
	go func() { listener.Run(mctx); close(listening) }()
	counting := make(chan struct{})
	go func() { s.watchUnavailableKeys(mctx); close(counting) }()
	go func() { s.monitor(mctx); <-listening; <-counting; close(s.monitorDone) }()
	return s, nil
}

// Listeners are where a server serves.
type Listeners struct {
	// API serves every service (TLS when the server has it).
	API net.Listener
	// Health, when set, serves grpc.health.v1 alone, without TLS, for probes that cannot speak TLS
	// (Kubernetes' native gRPC probes).
	Health net.Listener
}

// Run is the one lifecycle of a serving resolverd, `serve`'s and `dev`'s alike: it serves on l
// until ctx ends or a listener fails, then shuts down (see Shutdown), giving in-flight calls grace
// to finish. It returns the first listener's failure, or nil after a stop asked for by ctx (or
// by a direct call to Shutdown).
func (s *Server) Run(ctx context.Context, l Listeners, grace time.Duration) error {
	served := make(chan error, 2)
	if l.Health != nil {
		go func() { served <- s.ServeHealth(l.Health) }()
	}
	go func() { served <- s.Serve(l.API) }()
	var err error
	select {
	case err = <-served: // a listener failed (nil: Shutdown was called directly)
	case <-ctx.Done():
		s.log.Info("shutting down", "grace", grace.String())
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), grace)
	defer cancel()
	s.Shutdown(sctx)
	return err
}

// Serve serves on lis until Shutdown.
func (s *Server) Serve(lis net.Listener) error {
	if err := s.GRPC.Serve(lis); err != nil && !errors.Is(err, grpc.ErrServerStopped) {
		return fmt.Errorf("serve gRPC on %s: %w", lis.Addr(), err)
	}
	return nil
}

// ServeHealth serves the health service alone on lis, without TLS, until Shutdown.
func (s *Server) ServeHealth(lis net.Listener) error {
	if err := s.HealthOnly.Serve(lis); err != nil && !errors.Is(err, grpc.ErrServerStopped) {
		return fmt.Errorf("serve health on %s: %w", lis.Addr(), err)
	}
	return nil
}

// Shutdown turns health to NOT_SERVING, lets in-flight calls finish until ctx ends, stops, and
// then writes the audit records still buffered.
func (s *Server) Shutdown(ctx context.Context) {
	s.stopOnce.Do(func() {
		s.stopMonitor()
		<-s.monitorDone
		s.stopJWT()
		s.health.Shutdown()
		done := make(chan struct{})
		go func() { s.GRPC.GracefulStop(); close(done) }()
		select {
		case <-done:
		case <-ctx.Done():
			s.GRPC.Stop()
			<-done
		}
		s.HealthOnly.Stop()
		flush, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		s.audit.Close(flush)
	})
}

// AuditDepth is the number of audit records waiting to be written.
func (s *Server) AuditDepth() int { return s.audit.Depth() }

// CacheStats reports the cache's use.
func (s *Server) CacheStats() cachedstore.Stats { return s.cached.Stats() }

// LastBarrier is the last db.SendBarrier the change listener has applied.
func (s *Server) LastBarrier() string { return s.listener.LastBarrier() }

// ListenerPID is the PostgreSQL backend of the change listener (0 while it is reconnecting).
func (s *Server) ListenerPID() uint32 { return s.listener.BackendPID() }

// LivenessService is a health service name that is SERVING for as long as the server serves,
// whatever the database does: for liveness probes, which must not restart a replica that is only
// waiting for PostgreSQL (readiness, on "", takes it out of rotation meanwhile).
const LivenessService = "resolverd.liveness"

// services are the names health reports on; "" is the whole server.
var services = []string{"", resolverv1.ResolverService_ServiceDesc.ServiceName, resolverv1.AdminService_ServiceDesc.ServiceName}

// auditMaintenanceEvery is how often the audit trail's partitions are made ahead and its expired
// days dropped; auditMaintenanceRetry, after a round that failed (such as a lock it could not get
// within its timeout, while a long audit verify read the trail).
const (
	auditMaintenanceEvery = time.Hour
	auditMaintenanceRetry = time.Minute
)

func (s *Server) monitor(ctx context.Context) {
	t := time.NewTicker(s.every)
	defer t.Stop()
	nextMaintenance := time.Now()
	for {
		if !time.Now().Before(nextMaintenance) {
			nextMaintenance = time.Now().Add(auditMaintenanceEvery)
			if !s.maintainAudit(ctx) {
				nextMaintenance = time.Now().Add(auditMaintenanceRetry)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			s.checkHealth(ctx)
		}
	}
}

// watchUnavailableKeys refreshes the resolverd_keys_unavailable gauge as often as health is checked,
// on its own (a database that hangs must not slow the health checks). Cooldowns end by the clock,
// not by a change, so the gauge is read again each time rather than kept from notifications.
func (s *Server) watchUnavailableKeys(ctx context.Context) {
	if s.metrics == nil {
		return
	}
	t := time.NewTicker(s.every)
	defer t.Stop()
	for {
		s.countUnavailableKeys(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// countUnavailableKeys reads the counts once. On a failure the gauge keeps its last values; health
// reports the outage.
func (s *Server) countUnavailableKeys(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, s.every)
	defer cancel()
	counts, err := s.store.UnavailableCentralKeys(dbauthz.AsSystemRestricted(ctx, dbauthz.SystemKeyHealth))
	if err != nil {
		s.log.Debug("metrics: counting unavailable central keys failed", "error", err)
		return
	}
	s.metrics.KeysUnavailable(counts)
}

// maintainAudit keeps the audit trail's daily partitions a week ahead and, with a retention, drops
// the expired days (docs/CONTRACT.md §7.4). Every replica does it; they take turns. It reports
// whether all of it succeeded. A record is never refused for a missing partition: the default one
// takes it, and the next round gives its day a partition.
func (s *Server) maintainAudit(ctx context.Context) bool {
	created, err := s.store.EnsureAuditPartitions(dbauthz.AsSystemRestricted(ctx, dbauthz.SystemAuditWriter), time.Now(), db.AuditPartitionsAhead)
	if len(created) > 0 {
		s.log.Info("audit: created partitions", "partitions", created)
	}
	ok := err == nil
	if err != nil && ctx.Err() == nil {
		s.log.Warn("audit: creating partitions failed; will retry", "error", err)
	}
	if s.retention > 0 {
		ok = s.expireAudit(ctx) && ok
	}
	return ok
}

// expireAudit drops the days older than the retention whole. Only the trail written before
// partitioning, while its partition still holds younger records, loses its old rows a bounded
// batch at a time.
func (s *Server) expireAudit(ctx context.Context) bool {
	cutoff := time.Now().Add(-s.retention)
	ctx = dbauthz.AsSystemRestricted(ctx, dbauthz.SystemAuditRetention)
	exp, err := s.store.DropAuditPartitionsBefore(ctx, cutoff)
	if len(exp.Dropped) > 0 {
		s.log.Info("audit retention: dropped expired days", "partitions", exp.Dropped, "older_than", cutoff.Format(time.RFC3339))
	}
	if err != nil {
		if ctx.Err() == nil {
			s.log.Warn("audit retention: dropping expired days failed; will retry", "error", err)
		}
		return false
	}
	if !exp.Legacy {
		return true
	}
	var total int64
	for ctx.Err() == nil {
		n, err := s.store.DeleteAuditEventsBefore(ctx, cutoff, 10_000)
		if err != nil {
			s.log.Warn("audit retention: deleting old events failed; will retry", "error", err)
			return false
		}
		total += n
		if n < 10_000 {
			break
		}
	}
	if total > 0 {
		s.log.Info("audit retention: deleted old events written before partitioning", "deleted", total, "older_than", cutoff.Format(time.RFC3339))
	}
	return ctx.Err() == nil
}

// checkHealth sets SERVING only when the database answers and its schema is current.
func (s *Server) checkHealth(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, s.every)
	defer cancel()
	st := healthpb.HealthCheckResponse_SERVING
	if err := CheckSchema(ctx, s.pool); err != nil {
		if ctx.Err() == nil || !errors.Is(err, context.Canceled) {
			s.log.Warn("health: not serving", "error", err)
		}
		st = healthpb.HealthCheckResponse_NOT_SERVING
	}
	for _, name := range services {
		s.health.SetServingStatus(name, st)
	}
}

// ErrSchemaBehind is returned when the database's schema is older than the binary's migrations.
var ErrSchemaBehind = errors.New("the database schema is behind this binary")

// CheckSchema fails unless the database answers and has every migration this binary carries. A
// newer schema is accepted: during a rolling upgrade the migration runs first and the old replicas
// keep serving.
func CheckSchema(ctx context.Context, pool *pgxpool.Pool) error {
	v, err := db.SchemaVersion(ctx, pool)
	if err != nil {
		return err
	}
	if latest := db.LatestVersion(); v < latest {
		return fmt.Errorf("%w: it is at version %d, this binary needs %d; run `resolverd migrate up`", ErrSchemaBehind, v, latest)
	}
	return nil
}
