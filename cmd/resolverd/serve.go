package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"time"

	"github.com/resolverd/resolverd/internal/audit"
	"github.com/resolverd/resolverd/internal/cachedstore"
	"github.com/resolverd/resolverd/internal/db"
	"github.com/resolverd/resolverd/internal/egress"
	"github.com/resolverd/resolverd/internal/identity"
	"github.com/resolverd/resolverd/internal/metrics"
	"github.com/resolverd/resolverd/internal/server"
	"github.com/resolverd/resolverd/internal/telemetry"
	"github.com/resolverd/resolverd/internal/tlsconfig"
	"github.com/resolverd/resolverd/internal/transport"
)

// shutdownGrace is how long in-flight calls may take after SIGTERM.
const shutdownGrace = 10 * time.Second

func runServe(ctx context.Context, args []string, getenv func(string) string, stderr io.Writer) error {
	f := newFlags("serve", getenv, stderr)
	listen := f.string("listen", ":50051", "gRPC listen address")
	dbURL := f.string("database-url", "", "PostgreSQL URL, postgres://user:password@host:5432/dbname")
	allowBYOK := f.bool("allow-byok", true, "let providers whose byok_policy allows it use the chat owner's own key")
	keys := addKeyFlags(f, sealing, "comma-separated base64 of 32 random bytes each; the first seals, all open")
	reflect := f.bool("reflection", true, "serve gRPC reflection (for grpcurl)")
	tlsCert := f.string("tls-cert", "", "PEM certificate of the gRPC listener (reloaded when the file changes)")
	tlsKey := f.string("tls-key", "", "PEM private key of --tls-cert")
	tlsClientCA := f.string("tls-client-ca", "", "PEM CA that callers' certificates must chain to (mutual TLS)")
	plaintext := f.bool("plaintext", false, "accept unencrypted gRPC connections (without --tls-cert, serve refuses to start unless this is set)")
	healthListen := f.string("health-listen", "", "also serve grpc.health.v1 alone, without TLS, here (for probes that cannot speak TLS, such as Kubernetes' gRPC probes)")
	metricsListen := f.string("metrics-listen", "", "serve Prometheus /metrics on this address (off when empty)")
	otlpEndpoint := f.string("otlp-endpoint", "", "send OpenTelemetry traces to this OTLP/gRPC collector, e.g. otel-collector:4317 (off when empty)")
	otlpInsecure := f.bool("otlp-insecure", false, "send traces to --otlp-endpoint without TLS")
	rateLimit := f.float("rate-limit", 0, "requests per second each token may make, 0 for no limit")
	rateBurst := f.int("rate-burst", 0, "bursts above --rate-limit a token may make (default twice the rate)")
	callTimeout := f.duration("call-timeout", 3*time.Second, "the longest a call may wait on PostgreSQL before failing with DATABASE_UNAVAILABLE")
	retention := f.duration("audit-retention", 90*24*time.Hour, "how long audit events are kept (whole days are dropped once all of it is older); 0 keeps them forever")
	auditResolutions := f.string("audit-resolutions", "each", "each: one audit record per resolution; summary: the identical successful resolutions of --audit-summary-window become one record with their count")
	summaryWindow := f.duration("audit-summary-window", 10*time.Second, "how long --audit-resolutions=summary gathers identical resolutions into one record (a crash loses up to this much)")
	cacheMax := f.int("cache-max-entries", 100_000, "bound on each large cache (chats, model configs, user keys); central keys, tokens and workload identities get a tenth each (at least 1000)")
	cacheTTL := f.duration("cache-ttl", 60*time.Second, "the longest a cached entry is served without being read again (changes are pushed sooner)")
	logLevel := f.string("log-level", "info", "debug, info, warn or error (debug logs every call)")
	allowedHosts := f.string("allowed-provider-hosts", "", "comma-separated hosts and *.suffix patterns a provider's base_url may point at, e.g. api.openai.com,*.openai.azure.com (empty: any host)")
	debugListen := f.string("debug-listen", "", "serve Go's /debug/pprof profiles on this address (off when empty; never expose it publicly)")
	jwtIssuer := f.string("jwt-issuer", "", "accept JWTs (OIDC, Kubernetes service-account tokens) whose iss is this, as workload identities; needs --jwt-audience")
	jwtAudience := f.string("jwt-audience", "", "the aud every accepted JWT must name (e.g. resolverd); needs --jwt-issuer")
	jwtJWKSURL := f.string("jwt-jwks-url", "", "where the issuer's signing keys (JWK Set) are; default: jwks_uri of ISSUER/.well-known/openid-configuration")
	if err := f.parse(args); err != nil {
		return err
	}
	if err := require("database-url", *dbURL); err != nil {
		return err
	}
	// The keys are checked (and KMS keys opened) before anything else: a bad key stops serve at once.
	src, err := keys.open(ctx, sealing)
	if err != nil {
		return err
	}
	defer src.Close()
	hosts, err := egress.Parse(*allowedHosts)
	if err != nil {
		return fmt.Errorf("--allowed-provider-hosts: %w", err)
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		return fmt.Errorf("--log-level %q: use debug, info, warn or error", *logLevel)
	}
	switch {
	case *cacheMax < 1:
		return errors.New("--cache-max-entries must be at least 1")
	case *rateLimit < 0 || *rateBurst < 0:
		return errors.New("--rate-limit and --rate-burst must not be negative")
	case *callTimeout <= 0:
		return errors.New("--call-timeout must be positive")
	case *auditResolutions != "each" && *auditResolutions != "summary":
		return fmt.Errorf("--audit-resolutions %q: use each or summary", *auditResolutions)
	case *summaryWindow <= 0:
		return errors.New("--audit-summary-window must be positive")
	}
	cfg := server.Config{AllowBYOK: *allowBYOK, Reflection: *reflect, AuditRetention: *retention,
		Cache:       cachedstore.Options{MaxEntries: *cacheMax, TTL: *cacheTTL},
		CallTimeout: *callTimeout, RateLimit: transport.RateLimit{PerSecond: *rateLimit, Burst: *rateBurst},
		Audit: audit.Options{Summarise: *auditResolutions == "summary", SummaryWindow: *summaryWindow}}
	cfg.AllowedProviderHosts = hosts
	log := slog.New(slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: level}))
	switch {
	case *tlsCert != "" || *tlsKey != "":
		if cfg.TLS, err = tlsconfig.Load(tlsconfig.Files{Cert: *tlsCert, Key: *tlsKey, ClientCA: *tlsClientCA, Log: log}); err != nil {
			return err
		}
	case *tlsClientCA != "":
		return errors.New("--tls-client-ca needs --tls-cert and --tls-key")
	case !*plaintext:
		return errors.New("no TLS configured: give --tls-cert and --tls-key, or --plaintext=true to accept unencrypted connections")
	}
	cfg.Logger = log
	switch {
	case *jwtIssuer != "" || *jwtAudience != "":
		cfg.JWT = &identity.JWTOptions{Issuer: *jwtIssuer, Audience: *jwtAudience, JWKSURL: *jwtJWKSURL}
		if err := cfg.JWT.Check(); err != nil {
			return err
		}
	case *jwtJWKSURL != "":
		return errors.New("--jwt-jwks-url needs --jwt-issuer and --jwt-audience")
	}
	if *otlpEndpoint != "" {
		tr, err := telemetry.Setup(ctx, telemetry.Options{Endpoint: *otlpEndpoint, Insecure: *otlpInsecure, Version: version})
		if err != nil {
			return err
		}
		defer func() {
			sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if err := tr.Shutdown(sctx); err != nil {
				log.Warn("flushing traces failed", "error", err)
			}
		}()
		cfg.StatsHandler = tr.Handler
	}
	if *metricsListen != "" {
		cfg.Metrics = metrics.New()
	}

	pool, err := db.Connect(ctx, *dbURL)
	if err != nil {
		return err
	}
	defer pool.Close()
	// serve never migrates: a schema behind the binary is the operator's to fix.
	if err := server.CheckSchema(ctx, pool); err != nil {
		return err
	}
	// The KMS is called here, once: the data keys are unwrapped into the keyring (docs/CONTRACT.md §7.1).
	kr, keyInfo, err := src.ring(ctx, pool)
	if err != nil {
		return err
	}
	if err := server.CheckKeysGiven(ctx, pool, kr, keysAdvice(src)); err != nil {
		return err
	}
	if keyInfo.created != "" {
		log.Info("created the sealing data-encryption key, wrapped by the KMS key", "data_key_id", keyInfo.created, "kms_key", keyInfo.kmsKey)
	}
	srv, err := server.New(ctx, pool, kr, cfg)
	if err != nil {
		return err
	}
	if *debugListen != "" {
		stop, err := serveHTTP(*debugListen, "--debug-listen", pprofMux(), log)
		if err != nil {
			return err
		}
		defer stop()
	}
	if cfg.Metrics != nil {
		mux := http.NewServeMux()
		mux.Handle("/metrics", cfg.Metrics.Handler())
		stop, err := serveHTTP(*metricsListen, "--metrics-listen", mux, log)
		if err != nil {
			return err
		}
		defer stop()
	}
	var l server.Listeners
	if l.API, err = net.Listen("tcp", *listen); err != nil {
		return fmt.Errorf("listen on %s: %w", *listen, err)
	}
	if *healthListen != "" {
		if l.Health, err = net.Listen("tcp", *healthListen); err != nil {
			l.API.Close()
			return fmt.Errorf("listen on %s for --health-listen: %w", *healthListen, err)
		}
	}
	// docs/CONTRACT.md §7.5: where providers' base_url may point ("" is anywhere).
	log.Info("provider hosts", "allowed_provider_hosts", hosts.String())
	log.Info("serving", "listen", l.API.Addr().String(), "tls", cfg.TLS != nil, "mutual_tls", *tlsClientCA != "",
		"health_listen", *healthListen, "metrics_listen", *metricsListen, "tracing", *otlpEndpoint != "",
		"allow_byok", *allowBYOK, "reflection", *reflect, "rate_limit", *rateLimit, "schema_version", db.LatestVersion(),
		"jwt_issuer", *jwtIssuer, "jwt_audience", *jwtAudience,
		"encryption_key_ids", kr.IDs(), "kms_key", keyInfo.kmsKey, "from_key_ids", keyInfo.fromIDs, "version", version)
	return srv.Run(ctx, l, shutdownGrace)
}

func pprofMux() *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	return mux
}

// serveHTTP serves h on addr until the returned stop is called.
func serveHTTP(addr, flag string, h http.Handler, log *slog.Logger) (func(), error) {
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen on %s for %s: %w", addr, flag, err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		if err := srv.Serve(lis); err != nil && err != http.ErrServerClosed {
			log.Error("HTTP listener stopped", "flag", flag, "error", err)
		}
	}()
	return func() { _ = srv.Close() }, nil
}
