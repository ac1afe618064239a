package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"time"

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
	log := slog.New(slog.NewJSONHandler(stderr, nil))

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
	srv, err := server.New(ctx, pool, kr, server.Config{AllowBYOK: *allowBYOK, Reflection: *reflect, Logger: log, AuditRetention: *retention})
	if err != nil {
		return err
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
