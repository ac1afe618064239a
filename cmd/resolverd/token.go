package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/resolverd/resolverd/internal/apitoken"
	"github.com/resolverd/resolverd/internal/db"
	"github.com/resolverd/resolverd/internal/rbac"
)

func runToken(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "create" {
		fmt.Fprintln(stderr, "usage: resolverd token create --name N --scope S [--scope S...] [--ttl DURATION] [--database-url URL] (--encryption-keys KEYS | --kms-key-uri URI)")
		return errUsage
	}
	f := newFlags("token create", getenv, stderr)
	dbURL := f.string("database-url", "", "PostgreSQL URL, postgres://user:password@host:5432/dbname")
	keys := addKeyFlags(f, sealing, "the encryption keys, as serve takes them: they key the token's record in the audit trail")
	name := f.String("name", "", "what the token is for, e.g. chat-workers")
	var scopes multi
	f.Var(&scopes, "scope", "a scope to grant (repeat the flag); one of "+scopeList())
	ttl := f.Duration("ttl", 0, "lifetime, e.g. 720h; 0 means the token does not expire")
	if err := f.parse(args[1:]); err != nil {
		return err
	}
	if err := require("database-url", *dbURL); err != nil {
		return err
	}
	if strings.TrimSpace(*name) == "" {
		return errors.New("--name is required")
	}
	if len(scopes) == 0 {
		return fmt.Errorf("at least one --scope is required; one of %s", scopeList())
	}
	parsed, err := rbac.ParseScopes(scopes)
	if err != nil {
		return err
	}
	if *ttl < 0 {
		return errors.New("--ttl must not be negative")
	}
	// The token's creation is recorded in the audit trail, chained like every record since
	// migration 11 (docs/CONTRACT.md §7.4): an unchained record would read as inserted by hand.
	src, err := keys.open(ctx, sealing)
	if err != nil {
		return err
	}
	defer src.Close()
	var expires *time.Time
	if *ttl > 0 {
		t := time.Now().Add(*ttl).UTC()
		expires = &t
	}
	pool, err := db.Connect(ctx, *dbURL)
	if err != nil {
		return err
	}
	defer pool.Close()
	kr, _, err := src.ring(ctx, pool)
	if err != nil {
		return err
	}
	names := make([]string, len(parsed))
	for i, s := range parsed {
		names[i] = string(s)
	}
	tok, hash := apitoken.New()
	t, err := db.New(pool, kr).CreateToken(ctx, uuid.Must(uuid.NewV7()), *name, names, hash, expires)
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, tok.Reveal())
	fmt.Fprintf(stderr, "created token %s (%s) with scopes %s", t.ID, t.Name, strings.Join(t.Scopes, " "))
	if t.ExpiresAt != nil {
		fmt.Fprintf(stderr, ", expires %s", t.ExpiresAt.UTC().Format(time.RFC3339))
	}
	fmt.Fprintln(stderr, "; it is shown only once")
	return nil
}

func scopeList() string {
	names := make([]string, len(rbac.Known))
	for i, s := range rbac.Known {
		names[i] = string(s)
	}
	return strings.Join(names, ", ")
}
