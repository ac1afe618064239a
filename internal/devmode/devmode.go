// Package devmode is `resolverd dev`: a zero-setup local resolverd on a private PostgreSQL cluster
// started from the server binaries installed on the machine, migrated, seeded with a demo, with
// ready-made tokens and grpcurl commands.
package devmode

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/resolverd/resolverd/internal/apitoken"
	"github.com/resolverd/resolverd/internal/db"
	"github.com/resolverd/resolverd/internal/dbauthz"
	"github.com/resolverd/resolverd/internal/keyring"
	"github.com/resolverd/resolverd/internal/pgcluster"
	"github.com/resolverd/resolverd/internal/rbac"
	"github.com/resolverd/resolverd/internal/server"
)

// Options are `resolverd dev`'s flags.
type Options struct {
	DataDir   string
	Listen    string
	Demo      bool
	AllowBYOK bool
	Stdout    io.Writer
	Stderr    io.Writer
	// Ready, when set, receives the listening address once the server accepts calls.
	Ready func(addr string)
}

const databaseName = "resolverd"

// Run starts everything and serves until ctx is cancelled, then stops the server and the cluster.
func Run(ctx context.Context, o Options) error {
	dir, err := filepath.Abs(o.DataDir)
	if err != nil {
		return fmt.Errorf("data dir: %w", err)
	}
	// 0711: the cluster below may run as another user (as root, PostgreSQL runs as "postgres"),
	// which must pass through; the files here that matter are 0600.
	if err := os.MkdirAll(dir, 0o711); err != nil {
		return fmt.Errorf("create data dir %s: %w", dir, err)
	}
	// An existing directory others may write to would let them swap the files resolverd writes
	// (tokens, the database URL with its password): narrow it. As root, let PostgreSQL's user in.
	if fi, err := os.Stat(dir); err != nil {
		return fmt.Errorf("data dir: %w", err)
	} else if os.Geteuid() == 0 || fi.Mode().Perm()&0o022 != 0 {
		if err := os.Chmod(dir, 0o711); err != nil {
			return fmt.Errorf("make %s 0711 (others could write to it): %w", dir, err)
		}
	}
	log := slog.New(slog.NewTextHandler(o.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))

	cluster, err := pgcluster.Start(ctx, pgcluster.Options{DataDir: filepath.Join(dir, "postgres"), Durable: true, Log: o.Stderr})
	if err != nil {
		return fmt.Errorf("start PostgreSQL: %w", err)
	}
	defer func() {
		if err := cluster.Stop(); err != nil {
			fmt.Fprintf(o.Stderr, "stop PostgreSQL: %v\n", err)
		} else {
			fmt.Fprintln(o.Stderr, "PostgreSQL stopped")
		}
	}()
	if err := ensureDatabase(ctx, cluster); err != nil {
		return err
	}
	url := cluster.URL(databaseName)
	if err := writeSecretFile(filepath.Join(dir, "database.url"), url); err != nil {
		return err
	}
	pool, err := db.Connect(ctx, url)
	if err != nil {
		return err
	}
	defer pool.Close()

	mig, err := db.NewMigrator(pool, nil)
	if err != nil {
		return err
	}
	res, err := mig.UpTo(ctx, 0)
	mig.Close()
	if err != nil {
		return err
	}
	for _, r := range res {
		fmt.Fprintf(o.Stderr, "migrated: %s\n", r)
	}

	kr, err := devKeyring(filepath.Join(dir, "encryption.key"))
	if err != nil {
		return err
	}
	if err := server.CheckKeys(ctx, pool, kr); err != nil {
		return err
	}
	store := dbauthz.New(db.New(pool, kr))
	if o.Demo {
		seeded, err := SeedDemo(ctx, store)
		if err != nil {
			return fmt.Errorf("seed the demo: %w", err)
		}
		if seeded {
			fmt.Fprintln(o.Stderr, "seeded the demo: providers openai, anthropic, bedrock-us-east-1; user alice; chat", DemoChat)
		}
	}
	if _, err := ensureToken(ctx, store, filepath.Join(dir, "admin.token"), "dev-admin", []rbac.Scope{rbac.All}); err != nil {
		return err
	}
	if _, err := ensureToken(ctx, store, filepath.Join(dir, "worker.token"), "dev-worker", rbac.WorkerScopes); err != nil {
		return err
	}

	srv, err := server.New(ctx, pool, kr, server.Config{AllowBYOK: o.AllowBYOK, Reflection: true, Logger: log, CallTimeout: 3 * time.Second})
	if err != nil {
		return err
	}
	lis, err := net.Listen("tcp", o.Listen)
	if err != nil {
		srv.Shutdown(ctx)
		return fmt.Errorf("listen on %s: %w", o.Listen, err)
	}
	printBanner(o.Stdout, lis.Addr().String(), dir, o.Demo)
	if o.Ready != nil {
		o.Ready(lis.Addr().String())
	}
	return srv.Run(ctx, server.Listeners{API: lis}, 10*time.Second)
}

func ensureDatabase(ctx context.Context, cluster *pgcluster.Cluster) error {
	conn, err := pgx.Connect(ctx, cluster.URL("postgres"))
	if err != nil {
		return fmt.Errorf("connect to the dev cluster: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	var exists bool
	if err := conn.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)`, databaseName).Scan(&exists); err != nil {
		return fmt.Errorf("look for the dev database: %w", err)
	}
	if !exists {
		if _, err := conn.Exec(ctx, "CREATE DATABASE "+databaseName); err != nil {
			return fmt.Errorf("create the dev database: %w", err)
		}
	}
	return nil
}

// devKeyring reads the dev encryption key, generating it on first use.
func devKeyring(path string) (*keyring.Keyring, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		k := keyring.Generate()
		if err := writeSecretFile(path, k); err != nil {
			return nil, err
		}
		b = []byte(k)
	} else if err != nil {
		return nil, fmt.Errorf("read the dev encryption key: %w", err)
	}
	kr, err := keyring.Parse(strings.TrimSpace(string(b)))
	if err != nil {
		return nil, fmt.Errorf("dev encryption key %s: %w", path, err)
	}
	return kr, nil
}

// ensureToken keeps the token in path when it is still active and makes a new one otherwise, as
// dbauthz.SystemDevSeed.
func ensureToken(ctx context.Context, s *dbauthz.Store, path, name string, scopes []rbac.Scope) (string, error) {
	ctx = dbauthz.AsSystemRestricted(ctx, dbauthz.SystemDevSeed)
	if b, err := os.ReadFile(path); err == nil {
		tok := strings.TrimSpace(string(b))
		if apitoken.Valid(tok) {
			// Reused while active and holding every scope wanted: a worker.token from a release
			// before credential:report is replaced by one that can report.
			if t, ok, err := s.ActiveToken(ctx, apitoken.Hash(tok)); err != nil {
				return "", err
			} else if ok && holdsAll(t.Scopes, scopes) {
				return tok, nil
			}
		}
	}
	tok, hash := apitoken.New()
	if _, err := s.CreateToken(ctx, uuid.Must(uuid.NewV7()), name, scopes, hash, nil); err != nil {
		return "", err
	}
	if err := writeSecretFile(path, tok.Reveal()); err != nil {
		return "", err
	}
	return tok.Reveal(), nil
}

// holdsAll reports whether have names every scope of want.
func holdsAll(have []string, want []rbac.Scope) bool {
	for _, w := range want {
		if !slices.Contains(have, string(w)) {
			return false
		}
	}
	return true
}

// writeSecretFile replaces path with content, readable by its owner only. The content goes to a
// new temporary file (created exclusively, 0600, under a random name: nothing another user put in
// the directory can be written through) and is renamed into place, so readers see all or nothing.
func writeSecretFile(path, content string) (err error) {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*.tmp")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	defer func() {
		if err != nil {
			_ = os.Remove(f.Name())
		}
	}()
	if _, err = f.WriteString(content + "\n"); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err = f.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err = os.Rename(f.Name(), path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
