// Package pgtest gives each test its own PostgreSQL database on a private cluster: TestMain starts
// the cluster and migrates a template database once; NewDatabase clones the template for one test
// and drops the clone when the test ends. Nothing is mocked: the tests run on the server binaries
// installed on the machine (see internal/pgcluster).
package pgtest

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"go.uber.org/goleak"

	"github.com/resolverd/resolverd/internal/db"
	"github.com/resolverd/resolverd/internal/keyring"
	"github.com/resolverd/resolverd/internal/pgcluster"
)

const templateDB = "resolverd_template"

var (
	counter atomic.Int64
	// EncryptionKeys is the --encryption-keys of every test database (for commands a test runs);
	// Keyring is the same keys, parsed.
	EncryptionKeys = keyring.Generate()
	Keyring        = mustKeyring()

	// The cluster starts with the first test that asks for a database: a run of unit tests or a
	// fuzz worker in the same package does not pay for it.
	once       sync.Once
	startErr   error
	cluster    *pgcluster.Cluster
	clusterDir string
	mainCalled bool
)

func mustKeyring() *keyring.Keyring {
	kr, err := keyring.Parse(EncryptionKeys)
	if err != nil {
		panic(err)
	}
	return kr
}

// Main runs the tests, stops the cluster if one started, and then checks that no goroutine
// leaked. Use it as: func TestMain(m *testing.M) { pgtest.Main(m) }.
func Main(m *testing.M) {
	mainCalled = true
	code := m.Run()
	if cluster != nil {
		if err := cluster.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, "pgtest: stop the cluster:", err)
		}
	}
	if clusterDir != "" {
		os.RemoveAll(clusterDir)
	}
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			code = 1
		}
	}
	os.Exit(code)
}

func start() error {
	once.Do(func() {
		dir, err := os.MkdirTemp("", "resolverd-pgtest-*")
		if err != nil {
			startErr = err
			return
		}
		clusterDir = dir
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		if cluster, startErr = pgcluster.Start(ctx, pgcluster.Options{DataDir: dir}); startErr != nil {
			return
		}
		startErr = prepareTemplate(ctx)
	})
	return startErr
}

func prepareTemplate(ctx context.Context) error {
	if err := admin(ctx, "CREATE DATABASE "+templateDB); err != nil {
		return err
	}
	pool, err := db.Connect(ctx, cluster.URL(templateDB))
	if err != nil {
		return err
	}
	defer pool.Close()
	mig, err := db.NewMigrator(pool, nil)
	if err != nil {
		return err
	}
	defer mig.Close()
	if _, err := mig.UpTo(ctx, 0); err != nil {
		return err
	}
	return nil
}

// admin runs one statement on the cluster's maintenance database.
func admin(ctx context.Context, sql string) error {
	conn, err := pgx.Connect(ctx, cluster.URL("postgres"))
	if err != nil {
		return fmt.Errorf("connect to the test cluster: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if _, err := conn.Exec(ctx, sql); err != nil {
		return fmt.Errorf("%s: %w", sql, err)
	}
	return nil
}

// NewDatabase returns the URL of a fresh, fully migrated database that is dropped when t ends.
func NewDatabase(t testing.TB) string {
	return newDatabase(t, "TEMPLATE "+templateDB+" STRATEGY FILE_COPY")
}

// NewEmptyDatabase returns the URL of a fresh database with no schema (for migration tests).
func NewEmptyDatabase(t testing.TB) string {
	return newDatabase(t, "")
}

func newDatabase(t testing.TB, clause string) string {
	t.Helper()
	if !mainCalled {
		t.Fatal("pgtest: the package's TestMain must call pgtest.Main")
	}
	if err := start(); err != nil {
		t.Fatalf("pgtest: start PostgreSQL: %v", err)
	}
	name := fmt.Sprintf("t%d_%s", counter.Add(1), sanitize(t.Name()))
	ctx := context.Background()
	if err := admin(ctx, fmt.Sprintf("CREATE DATABASE %s %s", pgx.Identifier{name}.Sanitize(), clause)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := admin(ctx, fmt.Sprintf("DROP DATABASE %s WITH (FORCE)", pgx.Identifier{name}.Sanitize())); err != nil {
			t.Errorf("drop test database: %v", err)
		}
	})
	return cluster.URL(name)
}

// NewPool returns a pool on a fresh migrated database, closed when t ends.
func NewPool(t testing.TB) *pgxpool.Pool {
	t.Helper()
	return Connect(t, NewDatabase(t))
}

// Connect opens a pool on url, closed when t ends.
func Connect(t testing.TB, url string) *pgxpool.Pool {
	t.Helper()
	pool, err := db.Connect(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return pool
}

// ConnectWith opens a pool on url configured by configure (a tracer, a size), closed when t ends.
func ConnectWith(t testing.TB, url string, configure func(*pgxpool.Config)) *pgxpool.Pool {
	t.Helper()
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		t.Fatal(err)
	}
	configure(cfg)
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return pool
}

// sanitize keeps a database name short and plain (PostgreSQL's limit is 63 bytes).
func sanitize(s string) string {
	s = strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
			return r
		}
		if r >= 'A' && r <= 'Z' {
			return r + 'a' - 'A'
		}
		return '_'
	}, s)
	if len(s) > 40 {
		s = s[:40]
	}
	return s
}
