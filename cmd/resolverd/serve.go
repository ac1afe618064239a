package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"time"

	"github.com/resolverd/resolverd/internal/cachedstore"
	"github.com/resolverd/resolverd/internal/db"
	"github.com/resolverd/resolverd/internal/keyring"
	"github.com/resolverd/resolverd/internal/server"
)

// shutdownGrace is how long in-flight calls may take after SIGTERM.
const shutdownGrace = 10 * time.Second

func runServe(ctx context.Context, args []string, getenv func(string) string, stderr io.Writer) error {
	f := newFlags("serve", getenv, stderr)
	listen := f.string("listen", ":50051", "gRPC listen address")
	dbURL := f.string("database-url", "", "PostgreSQL URL, postgres://user:password@host:5432/dbname")
	allowBYOK := f.bool("allow-byok", true, "let providers whose byok_policy allows it use the chat owner's own key")
	encKeys := f.string("encryption-keys", "", "comma-separated base64 of 32 random bytes each; the first seals, all open")
	reflect := f.bool("reflection", true, "serve gRPC reflection (for grpcurl)")
	retention := f.duration("audit-retention", 90*24*time.Hour, "how long audit events are kept; 0 keeps them forever")
	cacheMax := f.int("cache-max-entries", 100_000, "bound on each large cache (chats, model configs, user keys); providers, central keys and tokens get a tenth")
	cacheTTL := f.duration("cache-ttl", 60*time.Second, "the longest a cached entry is served without being read again (changes are pushed sooner)")
	logLevel := f.string("log-level", "info", "debug, info, warn or error (debug logs every call)")
	debugListen := f.string("debug-listen", "", "serve Go's /debug/pprof profiles on this address (off when empty; never expose it publicly)")
	if err := f.parse(args); err != nil {
		return err
	}
	if err := require("database-url", *dbURL); err != nil {
		return err
	}
	kr, err := keyring.Parse(*encKeys)
	if err != nil {
		return err
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		return fmt.Errorf("--log-level %q: use debug, info, warn or error", *logLevel)
	}
	if *cacheMax < 1 {
		return fmt.Errorf("--cache-max-entries must be at least 1")
	}
	log := slog.New(slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: level}))

	pool, err := db.Connect(ctx, *dbURL)
	if err != nil {
		return err
	}
	defer pool.Close()
	// serve never migrates: a schema behind the binary is the operator's to fix.
	if err := server.CheckSchema(ctx, pool); err != nil {
		return err
	}
	if err := server.CheckKeys(ctx, pool, kr); err != nil {
		return err
	}
	srv, err := server.New(ctx, pool, kr, server.Config{AllowBYOK: *allowBYOK, Reflection: *reflect, Logger: log, AuditRetention: *retention,
		Cache: cachedstore.Options{MaxEntries: *cacheMax, TTL: *cacheTTL}})
	if err != nil {
		return err
	}
	if *debugListen != "" {
		stopDebug, err := serveDebug(*debugListen, log)
		if err != nil {
			return err
		}
		defer stopDebug()
	}
	lis, err := net.Listen("tcp", *listen)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", *listen, err)
	}
	log.Info("serving", "listen", lis.Addr().String(), "allow_byok", *allowBYOK, "reflection", *reflect,
		"schema_version", db.LatestVersion(), "encryption_key_ids", kr.IDs(), "version", version)
	served := make(chan error, 1)
	go func() { served <- srv.Serve(lis) }()
	select {
	case err := <-served:
		return err
	case <-ctx.Done():
	}
	log.Info("shutting down", "grace", shutdownGrace.String())
	sctx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
	defer cancel()
	srv.Shutdown(sctx)
	return <-served
}

// serveDebug serves net/http/pprof on addr until the returned stop is called.
func serveDebug(addr string, log *slog.Logger) (func(), error) {
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen on %s for --debug-listen: %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		if err := srv.Serve(lis); err != nil && err != http.ErrServerClosed {
			log.Error("debug listener stopped", "error", err)
		}
	}()
	return func() { _ = srv.Close() }, nil
}
