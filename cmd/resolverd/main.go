// Command resolverd tells LLM chat workers which model to call, at which provider, with which key.
// This package only parses flags and environment variables and calls the internal packages; see
// the README for the commands.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
)

// version is set at build time (-ldflags "-X main.version=...").
var version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr))
}

const usage = `usage: resolverd <command> [flags]

commands:
  serve                          serve the gRPC API (needs --database-url, and --encryption-keys
                                 or --kms-key-uri)
  dev                            zero-setup local instance on a private PostgreSQL, with a demo
  migrate up|down|status|preflight [--to VERSION]
                                 change or show the database schema; preflight lists what
                                 would stop the legacy cutover, changing nothing
  token create --name N --scope S [--scope S...] [--ttl D]
                                 create a bearer token and print it (needs --encryption-keys
                                 or --kms-key-uri: its audit record is chained)
  keys rotate (--encryption-keys NEW,OLD | --kms-key-uri URI)
              [--from-encryption-keys OLD] [--from-kms-key-uri OLD_URI]
                                 re-encrypt every stored secret under the target's sealing key;
                                 the --from- keys only open (moving into or out of a KMS)
  audit verify [--since RFC3339] check that no audit event was edited, deleted or inserted
  resolve --chat ID --purpose P  what a worker would get (the key only with --show-secret)
  version                        print the version

Run "resolverd <command> -h" for a command's flags. The flags of serve, dev and resolve, and
--database-url, --encryption-keys, --kms-key-uri, --from-encryption-keys and --from-kms-key-uri
everywhere, have RESOLVER_* environment variables.
`

// run executes one command and returns the process exit code. Failures print one line to stderr.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	var err error
	switch args[0] {
	case "serve":
		err = runServe(ctx, args[1:], getenv, stderr)
	case "dev":
		err = runDev(ctx, args[1:], getenv, stdout, stderr)
	case "migrate":
		err = runMigrate(ctx, args[1:], getenv, stdout, stderr)
	case "token":
		err = runToken(ctx, args[1:], getenv, stdout, stderr)
	case "keys":
		err = runKeys(ctx, args[1:], getenv, stdout, stderr)
	case "audit":
		err = runAudit(ctx, args[1:], getenv, stdout, stderr)
	case "resolve":
		err = runResolve(ctx, args[1:], getenv, stdout, stderr)
	case "version", "--version", "-version":
		fmt.Fprintf(stdout, "resolverd %s (schema version %d)\n", version, latestSchema())
		return 0
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	default:
		fmt.Fprintf(stderr, "resolverd: unknown command %q (\"resolverd help\" lists the commands)\n", args[0])
		return 2
	}
	if err != nil {
		switch err {
		case errHelp:
			return 0
		case errUsage:
			return 2
		}
		fmt.Fprintf(stderr, "resolverd %s: %s\n", args[0], oneLine(err.Error()))
		return 1
	}
	return 0
}

// oneLine folds a multi-line error (pgx reports each address it tried on its own line) into one.
func oneLine(s string) string {
	return strings.Join(strings.Fields(strings.ReplaceAll(s, "\n", "; ")), " ")
}
