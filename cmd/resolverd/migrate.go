package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/resolverd/resolverd/internal/db"
	"github.com/resolverd/resolverd/internal/kms"
)

func latestSchema() int64 { return db.LatestVersion() }

func runMigrate(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" {
		fmt.Fprintln(stderr, "usage: resolverd migrate up|down|status|preflight [--to VERSION] [--kms-key-uri URI] [--database-url URL]")
		if len(args) == 0 {
			return errUsage
		}
		return errHelp
	}
	action := args[0]
	f := newFlags("migrate "+action, getenv, stderr)
	dbURL := f.string("database-url", "", "PostgreSQL URL, postgres://user:password@host:5432/dbname")
	to := f.String("to", "", "target version (up: default the newest; down: default one step back)")
	kmsURI := f.string("kms-key-uri", "", "with up: after migrating, create the KMS-wrapped data-encryption key if there is none and check that the KMS key unwraps every one it wrapped, so a KMS mistake shows before serve starts (other actions ignore it)")
	if err := f.parse(args[1:]); err != nil {
		return err
	}
	var kmsKey *kms.Key
	if action == "up" && strings.TrimSpace(*kmsURI) != "" {
		k, err := kms.Open(ctx, *kmsURI)
		if err != nil {
			return fmt.Errorf("--kms-key-uri: %w", err)
		}
		defer k.Close()
		kmsKey = k
	}
	if err := require("database-url", *dbURL); err != nil {
		return err
	}
	var target int64
	if *to != "" {
		v, err := strconv.ParseInt(*to, 10, 64)
		if err != nil || v < 0 || v > db.LatestVersion() {
			return fmt.Errorf("--to %q must be a version between 0 and %d", *to, db.LatestVersion())
		}
		target = v
	}
	pool, err := db.Connect(ctx, *dbURL)
	if err != nil {
		return err
	}
	defer pool.Close()
	if action == "preflight" {
		return preflight(ctx, pool, stdout)
	}
	mig, err := db.NewMigrator(pool, slog.New(slog.NewTextHandler(stderr, nil)))
	if err != nil {
		return err
	}
	defer mig.Close()

	switch action {
	case "up":
		if *to == "" {
			target = 0
		}
		res, err := mig.UpTo(ctx, target)
		for _, r := range res {
			fmt.Fprintln(stdout, describe(r))
		}
		if err != nil {
			return err
		}
		if len(res) == 0 {
			fmt.Fprintln(stdout, "nothing to do: the schema is current")
		}
		if kmsKey != nil && (target == 0 || target >= kms.SchemaVersion) {
			l, err := kms.Load(ctx, pool, kmsKey, kms.Seal)
			if err != nil {
				return err
			}
			if l.Created != "" {
				fmt.Fprintf(stdout, "created data-encryption key %s, wrapped by KMS key %s\n", l.Created, kmsKey.Name())
			} else {
				fmt.Fprintf(stdout, "KMS key %s unwraps its %d data-encryption key(s)\n", kmsKey.Name(), len(l.Keys))
			}
		}
	case "down":
		if *to == "" {
			cur, err := db.SchemaVersion(ctx, pool)
			if err != nil {
				return err
			}
			if cur == 0 {
				fmt.Fprintln(stdout, "nothing to do: no migration is applied")
				return nil
			}
			target = cur - 1
		}
		res, err := mig.DownTo(ctx, target)
		for _, r := range res {
			fmt.Fprintln(stdout, describe(r))
		}
		if err != nil {
			return err
		}
	case "status":
		st, err := mig.Status(ctx)
		if err != nil {
			return err
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "VERSION\tSTATE\tAPPLIED AT\tFILE")
		for _, s := range st {
			applied := "-"
			if !s.AppliedAt.IsZero() {
				applied = s.AppliedAt.UTC().Format("2006-01-02 15:04:05Z")
			}
			fmt.Fprintf(tw, "%d\t%s\t%s\t%s\n", s.Source.Version, s.State, applied, db.MigrationName(s.Source.Version, s.Source.Path))
		}
		return tw.Flush()
	default:
		return fmt.Errorf("unknown action %q: use up, down, status or preflight", action)
	}
	return nil
}

// preflight prints every conflict that would stop the legacy cutover, changing nothing.
func preflight(ctx context.Context, pool *pgxpool.Pool, stdout io.Writer) error {
	report, err := db.Preflight(ctx, pool)
	if err != nil {
		return err
	}
	if !report.Pending {
		fmt.Fprintln(stdout, report.Note)
		return nil
	}
	for _, c := range report.Conflicts {
		fmt.Fprintf(stdout, "CONFLICT %s: %s\n", c.Kind, c.Detail)
	}
	if n := len(report.Conflicts); n > 0 {
		return fmt.Errorf("%d conflict(s) would stop the legacy cutover; fix them and run preflight again", n)
	}
	fmt.Fprintln(stdout, "no conflicts: `resolverd migrate up` can move the legacy tables")
	return nil
}

// describe is one line per applied or reverted migration.
func describe(r *db.MigrationResult) string {
	state := "OK"
	if r.Error != nil {
		state = "FAILED"
	}
	return fmt.Sprintf("%-6s %-4s %s (%s)", state, r.Direction, db.MigrationName(r.Source.Version, r.Source.Path), r.Duration.Round(time.Millisecond))
}
